"""Obsidian Markdown to standard Markdown, for one page at a time.

Positions of links, tags, metric references, headings and block ids come from the vault model;
where a link points comes only from `check`'s `Resolver`. This module decides what each
construct becomes:

- wikilinks and markdown links to notes: relative `.md` links with the target page's anchors
  (`anchors.py`), so MkDocs resolves and validates them;
- note, heading and block embeds: the target's text, converted for the embedding page, inside a
  marked container (a cycle or a too-deep chain becomes a link);
- image embeds: images with their size (`![[plot.png|300]]` -> `{ width="300" }`);
- block ids: HTML anchors; `%% %%` and HTML comments: removed; `==highlight==`: `<mark>`;
- inline tags: links to their tag page; `{{evidence:metric}}`: the recorded value, or a visible
  "not measured" marker; `{{log:EVENT}}` (alone on its line): the recorded log lines as a code
  block; `![[records/<module>/<plot>.png]]`: the recorded plot, an ordinary image embed;
- raw HTML outside the allowlist, remote images and active-scheme links: neutralised;
- callouts: admonitions (`callouts.py`), as a last, line-level pass.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from fmbuild.site import urls
from fmbuild.site.anchors import NoteAnchors, PageIds, plan_anchors, slug
from fmbuild.site.callouts import convert_callouts
from fmbuild.site.edits import EditSet
from fmbuild.site.evidence_view import EvidenceBook, format_value
from fmbuild.site.sanitize import TAG as HTML_TAG
from fmbuild.site.sanitize import clean_inline, safe_url, tag_is_safe
from fmbuild.site.source import Source, read_source, source_of
from fmbuild.vault.model import Link, LinkKind, LogRef, Note, Vault
from fmbuild.vault.resolve import Resolution, Resolver

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".avif"})
MAX_EMBED_DEPTH = 4

_HEADING_LINE = re.compile(r"^( {0,3}#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*$")
_HIGHLIGHT = re.compile(r"==(?=[^\s=])([^\n]*?[^\s=])==")
_SIZE = re.compile(r"^\s*(\d+)(?:\s*x\s*(\d+))?\s*$")
_MD_ANY = re.compile(
    r"(!?)\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(\s*(<[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
_REF_DEF = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?([^\s>]+)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


_MD_ESCAPES = str.maketrans({**{ch: "\\" + ch for ch in "\\`*_[]|~"}, "<": "&lt;"})


def md_escape(text: str) -> str:
    """Plain text (a title, a file name) safe to place in Markdown inline content."""
    return text.translate(_MD_ESCAPES)


@dataclass
class SiteVault:
    """What every page's conversion shares: the model, the resolver, the texts, the anchors."""

    vault: Vault
    resolver: Resolver
    evidence: EvidenceBook
    sources: dict[str, Source] = field(default_factory=dict)
    anchors: dict[str, NoteAnchors] = field(default_factory=dict)
    used_attachments: set[str] = field(default_factory=set)
    neutralised: list[str] = field(default_factory=list)  # 'path:line: what' for the build log

    def source(self, note: Note) -> Source:
        found = self.sources.get(note.path)
        if found is None:
            found = self.sources[note.path] = read_source(self.vault.root, note)
        return found

    def anchors_of(self, note: Note) -> NoteAnchors:
        found = self.anchors.get(note.path)
        if found is None:
            lines = self.source(note).text.split("\n")
            found = self.anchors[note.path] = plan_anchors(note, title_of(note), lines)
        return found


_TITLES: dict[int, tuple[Note, str]] = {}


def title_of(note: Note) -> str:
    """A note's title (memoised: pages ask for the titles of their neighbours again and again)."""
    hit = _TITLES.get(id(note))
    if hit is not None and hit[0] is note:
        return hit[1]
    title = note.title
    _TITLES[id(note)] = (note, title)
    return title


def forget_titles() -> None:
    """Drop the memo (each build starts afresh; `serve` would otherwise keep every old note)."""
    _TITLES.clear()


class Converter:
    def __init__(self, site: SiteVault) -> None:
        self.site = site

    # --- entry points -----------------------------------------------------------------------

    def page_body(self, note: Note, page: str, ids: PageIds) -> str:
        """The note's body converted as the main content of its own page."""
        src = self.site.source(note)
        return self._convert(note, page, ids, (note.path,), src.body_start, len(src.text), own=True)

    # --- the pass ------------------------------------------------------------------------------

    def _convert(
        self, note: Note, page: str, ids: PageIds, chain: tuple[str, ...], start: int, end: int, *, own: bool
    ) -> str:
        src = self.site.source(note)
        text = src.text
        edits = EditSet()

        def inside(offset: int) -> bool:
            return start <= offset < end

        # Comments go first: nothing inside them is rewritten.
        for a, b in src.comments:
            if b <= start or a >= end:
                continue
            a, b = max(a, start), min(b, end)
            line_start = text.rfind("\n", 0, a) + 1
            line_end = text.find("\n", b)
            line_end = len(text) if line_end < 0 else line_end
            if not text[line_start:a].strip() and not text[b:line_end].strip():
                edits.add(line_start, min(line_end + 1, end), "")  # the comment filled its lines
            else:
                edits.add(a, b, "")

        for link in note.links:
            if link.kind is LinkKind.PROPERTY:
                continue
            offset = src.offset(link.line, link.column)
            if not inside(offset) or text[offset : offset + len(link.raw)] != link.raw:
                continue
            replacement = self._link(note, link, page, ids, chain, src, offset)
            edits.add(offset, offset + len(link.raw), replacement)

        for tag in note.tags:
            if not tag.inline:
                continue
            offset = src.offset(tag.line, tag.column)
            raw = "#" + tag.name
            if inside(offset) and text[offset : offset + len(raw)] == raw:
                href = urls.relative_md(page, urls.tag_page(tag.name))
                edits.add(offset, offset + len(raw), f"[\\#{md_escape(tag.name)}]({href}){{ .fm-tag }}")

        for ref in note.metric_refs:
            offset = src.offset(ref.line, ref.column)
            if inside(offset) and text[offset : offset + len(ref.raw)] == ref.raw:
                edits.add(offset, offset + len(ref.raw), self._metric(note, ref.module, ref.metric, ref.fmt))

        for log in note.log_refs:
            offset = src.offset(log.line, log.column)
            if inside(offset) and text[offset : offset + len(log.raw)] == log.raw:
                indent = text[text.rfind("\n", 0, offset) + 1 : offset]
                edits.add(offset, offset + len(log.raw), self._log(note, log, indent if not indent.strip() else ""))

        anchors = self.site.anchors_of(note)
        for index, heading in enumerate(note.headings):
            line_start, line_end = src.line_span(heading.line)
            if not inside(line_start):
                continue
            m = _HEADING_LINE.match(text[line_start:line_end])
            if m is None or not (m.group(2) or "").strip():
                continue
            anchor = anchors.heading(index) if own else ids.allocate(slug(heading.text))
            edits.add(line_start + m.end(2), line_end, f" {{ #{anchor} }}")

        for block in note.blocks:
            self._block(note, block.id, block.line, src, edits, anchors, own, inside)

        self._inline_passes(note, src, edits, start, end)
        converted = edits.apply(text, start, end)
        return self._structural(converted)

    def _block(self, note: Note, block_id: str, line: int, src: Source, edits: EditSet, anchors: NoteAnchors,
               own: bool, inside: Callable[[int], bool]) -> None:
        line_start, line_end = src.line_span(line)
        if not inside(line_start):
            return
        m = re.search(rf"(?:^|[ \t])(\^{re.escape(block_id)})[ \t]*$", src.text[line_start:line_end])
        if m is None:
            return
        marker = f'<span class="fm-block" id="{html.escape(anchors.blocks.get(block_id, ""))}"></span>' if own else ""
        if not src.text[line_start : line_start + m.start(1)].strip():
            # `^id` alone on its line names the block above it: anchor the end of that block.
            edits.add(line_start, line_end, "")
            prev = src.text.rfind("\n", 0, max(line_start - 1, 0))
            while prev > 0 and not src.text[prev + 1 : line_start].strip():
                prev = src.text.rfind("\n", 0, prev)
            prev_end = src.text.find("\n", prev + 1)
            if marker and 0 <= prev_end < line_start and inside(prev_end):
                edits.add(prev_end, prev_end, " " + marker)
            return
        edits.add(line_start + m.start(1), line_start + m.end(1), marker)

    def _inline_passes(self, note: Note, src: Source, edits: EditSet, start: int, end: int) -> None:
        """Highlights, unsafe raw HTML, remote images and active-scheme links: found here, in the
        parts of the text that are neither code nor comment nor already rewritten."""
        text = src.text
        segment = text[start:end]
        # Each pass runs only where its syntax can occur at all (most notes have no raw HTML).
        highlights = _HIGHLIGHT.finditer(text, start, end) if "==" in segment else ()
        md_links = _MD_ANY.finditer(text, start, end) if "](" in segment else ()
        ref_defs = _REF_DEF.finditer(text, start, end) if "]:" in segment else ()
        tags = HTML_TAG.finditer(text, start, end) if "<" in segment else ()
        for m in highlights:
            a, b = m.start(), m.end()  # only the `==` markers must be free: links may sit inside
            if any(src.protected(x, x + 2) or edits.overlaps(x, x + 2) for x in (a, b - 2)):
                continue
            edits.add(a, a + 2, "<mark>")
            edits.add(b - 2, b, "</mark>")
        for m in md_links:
            if src.protected(m.start(), m.end()) or edits.overlaps(m.start(), m.end()):
                continue
            url = m.group(3)[1:-1] if m.group(3).startswith("<") else m.group(3)
            decoded = re.sub(r"[\x00-\x20]", "", html.unescape(url))  # `jav&#x61;script:` is a scheme too
            external = bool(_SCHEME.match(decoded)) or decoded.startswith("//")
            if m.group(1) and external:
                label = m.group(2).strip() or url
                if safe_url(url, loads=False):
                    edits.add(m.start(), m.end(), f"[{label}]({m.group(3)}){{ .fm-remote-image }}")
                else:
                    edits.add(m.start(), m.end(), md_escape(label))
                self._note_neutralised(note, src, m.start(), f"remote image not loaded: {url}")
            elif external and not safe_url(url, loads=False):
                edits.add(m.start(), m.end(), m.group(2))
                self._note_neutralised(note, src, m.start(), f"link with unsafe scheme removed: {url}")
        for m in ref_defs:
            if not src.protected(m.start(), m.end()) and not safe_url(m.group(1), loads=False):
                edits.add(m.start(), m.end(), html.escape(m.group(0), quote=False).replace("[", "\\["))
        for m in tags:
            if src.protected(m.start(), m.end()) or edits.overlaps(m.start(), m.end()) or tag_is_safe(m):
                continue
            edits.add(m.start(), m.end(), html.escape(m.group(0), quote=False))
            self._note_neutralised(note, src, m.start(), f"raw HTML shown as text: {m.group(0)[:60]}")

    def _note_neutralised(self, note: Note, src: Source, offset: int, what: str) -> None:
        self.site.neutralised.append(f"{note.path}:{src.line_of(offset)}: {what}")

    @staticmethod
    def _structural(converted: str) -> str:
        """Callouts to admonitions; code lines (found afresh in the converted text) untouched."""
        if "[!" not in converted:
            return converted
        lines = converted.split("\n")
        src = source_of(converted, 1)
        fenced = [False] * len(lines)
        for a, b in src.fences:
            first, last = src.line_of(a), src.line_of(max(a, b - 1))
            for number in range(first, last + 1):
                fenced[number - 1] = True
        return "\n".join(convert_callouts(lines, fenced))

    # --- links ---------------------------------------------------------------------------------

    def _link(self, note: Note, link: Link, page: str, ids: PageIds, chain: tuple[str, ...], src: Source,
              offset: int) -> str:
        res = self.site.resolver.resolve_link(link, note)
        if not res.ok or res.path is None:
            return self._broken(link, res)
        if not res.is_note:
            return self._attachment(link, res.path, page)
        target = self.site.vault.notes.get(res.path)
        if target is None:  # a note that exists but could not be read: link to nothing
            return self._broken(link, res)
        if link.kind is LinkKind.EMBED:
            alone = self._alone_on_line(src, offset, len(link.raw))
            if alone is not None and len(chain) < MAX_EMBED_DEPTH and target.path not in chain:
                return self._transclude(target, link, res, page, ids, chain, alone)
        href = self._note_href(target, link, res, page)
        return f"[{self._label(note, target, link)}]({href})"

    def _note_href(self, target: Note, link: Link, res: Resolution, page: str) -> str:
        anchors = self.site.anchors_of(target)
        fragment = ""
        if link.block is not None and res.block_ok:
            key = next((b.id for b in target.blocks if b.id.lower() == link.block.strip().lower()), None)
            if key is not None:
                fragment = anchors.blocks[key]
        elif link.heading is not None and res.heading is not None:
            index = next((i for i, h in enumerate(target.headings) if h is res.heading), None)
            if index is not None:
                fragment = anchors.heading(index)
        docs = docs_path(target)
        if docs == page and fragment:
            return f"#{fragment}"
        href = urls.relative_md(page, docs)
        return f"{href}#{fragment}" if fragment else href

    def _label(self, note: Note, target: Note, link: Link) -> str:
        if link.kind is LinkKind.MARKDOWN:
            return clean_inline(link.alias) if link.alias else md_escape(title_of(target))
        if link.alias:
            return clean_inline(link.alias.replace("[", "\\[").replace("]", "\\]"))
        sub = link.heading.split("#")[-1].strip() if link.heading else None
        if not link.target.strip():  # [[#Heading]] in the same note
            return md_escape(sub or title_of(target))
        title = md_escape(title_of(target))
        return f"{title} &gt; {md_escape(sub)}" if sub else title

    def _attachment(self, link: Link, path: str, page: str) -> str:
        self.site.used_attachments.add(path)
        href = urls.relative_md(page, path)
        name = PurePosixPath(path).name
        is_image = PurePosixPath(path).suffix.lower() in IMAGE_EXTENSIONS
        if link.kind is LinkKind.EMBED and is_image:
            alt, size = name, None
            if link.alias:
                parts = [p.strip() for p in link.alias.split("|")]
                if _SIZE.match(parts[-1]):
                    size = _SIZE.match(parts[-1])
                    parts = parts[:-1]
                if parts and parts[0]:
                    alt = parts[0]
            attrs = ""
            if size is not None:
                attrs = f'{{ width="{size.group(1)}"' + (f' height="{size.group(2)}"' if size.group(2) else "") + " }"
            return f"![{md_escape(alt)}]({href}){attrs}"
        if link.image and is_image:
            return f"![{clean_inline(link.alias) if link.alias else md_escape(name)}]({href})"
        label = clean_inline(link.alias) if (link.alias and link.kind is not LinkKind.EMBED) else md_escape(name)
        return f"[{label}]({href})"

    @staticmethod
    def _broken(link: Link, res: Resolution) -> str:
        label = link.alias or link.target or link.raw
        why = "ambiguous: " + ", ".join(res.candidates) if res.status == "ambiguous" else "no such note or file"
        return (f'<span class="fm-broken" title="{html.escape(why)}">'
                f"{html.escape(label, quote=False)}</span>")

    # --- embeds ---------------------------------------------------------------------------------

    @staticmethod
    def _alone_on_line(src: Source, offset: int, length: int) -> str | None:
        """The line's prefix (indentation, `>` quote marks) when the embed stands alone on its
        line, so that it can become a block; None when it sits inside a sentence."""
        line_start = src.text.rfind("\n", 0, offset) + 1
        line_end = src.text.find("\n", offset + length)
        line_end = len(src.text) if line_end < 0 else line_end
        prefix = src.text[line_start:offset]
        if prefix.strip(" \t>") or src.text[offset + length : line_end].strip():
            return None
        return prefix

    def _transclude(self, target: Note, link: Link, res: Resolution, page: str, ids: PageIds,
                    chain: tuple[str, ...], prefix: str) -> str:
        tsrc = self.site.source(target)
        start, end = tsrc.body_start, len(tsrc.text)
        if link.heading is not None and res.heading is not None:
            start, end = self._heading_section(target, tsrc, res)
        elif link.block is not None and res.block_ok:
            start, end = self._block_span(target, tsrc, link.block)
        inner = self._convert(target, page, ids, (*chain, target.path), start, end, own=False)
        href = self._note_href(target, link, res, page)
        label = md_escape(title_of(target))
        if link.heading and res.heading is not None:
            label += " &gt; " + md_escape(res.heading.text)
        lines = [
            '<div class="fm-embed" markdown>',
            "",
            f"[{label}]({href}){{ .fm-embed__source }}",
            "",
            *inner.strip("\n").split("\n"),
            "",
            "</div>",
        ]
        # Every line after the first keeps the embed's quote/indent prefix (embeds in callouts).
        return ("\n" + prefix).join(lines)

    @staticmethod
    def _heading_section(target: Note, src: Source, res: Resolution) -> tuple[int, int]:
        heading = res.heading
        assert heading is not None
        start = src.line_span(heading.line)[0]
        end = len(src.text)
        after = False
        for h in target.headings:
            if h is heading:
                after = True
                continue
            if after and h.level <= heading.level:
                end = src.line_span(h.line)[0]
                break
        return start, end

    @staticmethod
    def _block_span(target: Note, src: Source, block_id: str) -> tuple[int, int]:
        line = next(b.line for b in target.blocks if b.id.lower() == block_id.strip().lower())
        line_start, line_end = src.line_span(line)
        text = src.text
        if re.match(r"^[ \t]*\^[A-Za-z0-9-]+[ \t]*$", text[line_start:line_end]):
            line_end = max(line_start - 1, 0)  # the id names the block above its own line
            line -= 1
        first = line
        while first - 1 >= 1:
            a, b = src.line_span(first - 1)
            if a < src.body_start or not text[a:b].strip() or _HEADING_LINE.match(text[a:b]):
                break
            first -= 1
        return src.line_span(first)[0], line_end

    # --- metrics ---------------------------------------------------------------------------------

    def _log(self, note: Note, ref: LogRef, indent: str) -> str:
        """A `{{log:...}}` line: the recorded lines as a code block, or a visible marker."""
        book = self.site.evidence
        module = book.named(ref.module) if ref.module else book.for_note(note)
        lines = module.log_lines(ref.event, ref.count) if module is not None and not ref.problem else []
        if lines:
            return log_block(lines, indent)
        reason = ref.problem or ("no evidence module" if module is None else
                                 "no record" if module.record is None else f"the record has no {ref.event} line")
        return (f'<span class="fm-metric fm-not-measured" title="{html.escape(ref.raw + ": " + reason)}">'
                "log excerpt not recorded</span>")

    def _metric(self, note: Note, module_name: str | None, metric: str, fmt: str | None) -> str:
        book = self.site.evidence
        module = book.named(module_name) if module_name else book.for_note(note)
        name = module_name or (module.name if module else None)
        where = f"evidence/{name}: {metric}" if name else metric
        if module is not None:
            found, value = module.metric(metric)
            if found:
                rec = module.record
                assert rec is not None
                title = f"{where} (run of {rec.date}, {rec.status})"
                return (f'<span class="fm-metric" title="{html.escape(title)}">'
                        f"{as_text(format_value(value, fmt))}</span>")
        reason = "no evidence module" if module is None else ("no record" if module.record is None else "the record has no such metric")
        return (f'<span class="fm-metric fm-not-measured" title="{html.escape(where + ": " + reason)}">'
                "not measured</span>")


def log_block(lines: list[str], indent: str = "") -> str:
    """Recorded log lines as a fenced code block (the renderer escapes its text); the fence is
    longer than any run of backticks inside."""
    longest = max((len(m.group(0)) for line in lines for m in re.finditer(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"\n{indent}".join([f"{fence}text", *lines, fence])


_INERT = re.compile(r"[^A-Za-z0-9 ]")


def as_text(value: str) -> str:
    """A run's value as text inside Markdown: every character but letters, digits and spaces
    as a numeric character reference, so neither Markdown (`[x](javascript:…)`, `![](https://…)`,
    `*`, a blank line) nor HTML can read it as syntax; the browser shows it as written."""
    return _INERT.sub(lambda m: f"&#{ord(m.group(0))};", value)


def docs_path(note: Note) -> str:
    """Where a note's page lives in the staged docs folder: its vault path."""
    return note.path
