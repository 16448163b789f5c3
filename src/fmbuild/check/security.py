"""Security lint: raw HTML in a note that would run in a reader's browser is an error.

The site renders notes as HTML, so a `<script>`, an `<iframe>` (or `<object>`/`<embed>`), an
`on…=` event handler or a `javascript:` URL in a note's prose would run on every reader's
machine. Code blocks and code spans are fine: a security manual shows payloads as code.
"""

from __future__ import annotations

from typing import Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error

_WHAT = {
    "script": "a raw <script> element",
    "iframe": "a raw embedded frame (iframe, frame, object or embed)",
    "event-handler": "an on…= event handler attribute",
    "javascript-url": "a javascript: (or vbscript:, data:text/html) URL",
}


@rule("unsafe-html")
def check_unsafe_html(ctx: CheckContext) -> Iterator[Diagnostic]:
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        for hazard in note.hazards:
            what = _WHAT.get(hazard.kind, "raw active HTML")
            yield error(
                note.path, hazard.line, hazard.column, "unsafe-html",
                f"{what} would run in readers' browsers: {hazard.text!r}; "
                "show it as code (`...` or a fenced block) or remove it",
            )
