"""Security lint: raw HTML in a note that would run in a reader's browser is an error.

The site renders notes as HTML, so a `<script>`, an `<iframe>` (or `<object>`/`<embed>`), an
`on…=` event handler (raw, or added with Python-Markdown's `attr_list`: `{ onload=… }`) or a
`javascript:` URL in a note's prose would run on every reader's machine. The site's allow-list
removes all of them anyway; the error says so before a reader sees a page without them. Code blocks and code spans are fine: a security manual shows payloads as code.
"""

from __future__ import annotations

from typing import Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.evidence.format_spec import spec_problem
from fmbuild.diagnostics import Diagnostic, error

_WHAT = {
    "script": "a raw <script> element",
    "iframe": "a raw embedded frame (iframe, frame, object or embed)",
    "event-handler": "an on…= event handler attribute",
    "javascript-url": "a javascript: (or vbscript:, data:text/html) URL",
    "attr-list-handler": "an attr_list event handler ({ on…=… })",
}
# attr_list attributes that do not run script but load or restyle from outside: the site's
# allow-list drops them, so the page would not show what the note asks for.
_DROPPED = {
    "attr-list-attribute": "an attr_list attribute the site drops (src, srcset, a style with url(), action, …)",
}


@rule("unsafe-html")
def check_unsafe_html(ctx: CheckContext) -> Iterator[Diagnostic]:
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        for hazard in note.hazards:
            if hazard.kind in _DROPPED:
                yield error(
                    note.path, hazard.line, hazard.column, "unsafe-html",
                    f"{_DROPPED[hazard.kind]}: {hazard.text!r}; the site loads nothing from a note's "
                    "attributes: use a Markdown image or link, or show it as code",
                )
                continue
            what = _WHAT.get(hazard.kind, "raw active HTML")
            yield error(
                note.path, hazard.line, hazard.column, "unsafe-html",
                f"{what} would run in readers' browsers: {hazard.text!r}; "
                "show it as code (`...` or a fenced block) or remove it",
            )


@rule("metric-format", needs_config=False)
def check_metric_formats(ctx: CheckContext) -> Iterator[Diagnostic]:
    """A format spec in `{{evidence:m:SPEC}}` outside the allowed grammar (or over its width and
    precision bounds) is an error at the spec's own column: the site would show the value
    unformatted, and an unbounded spec is how a note could make a build allocate gigabytes."""
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or not note.metric_refs:
            continue
        for ref in note.metric_refs:
            if not ref.fmt:
                continue
            found = spec_problem(ref.fmt)
            if found is None:
                continue
            offset, message = found
            start = ref.raw.find(ref.fmt, ref.raw.find(ref.metric) + len(ref.metric))
            column = ref.column + max(start, 0) + offset
            yield error(note.path, ref.line, column, "metric-format-invalid",
                        f"{message}; e.g. {{{{evidence:{ref.module + '/' if ref.module else ''}{ref.metric}:.3f}}}}")
