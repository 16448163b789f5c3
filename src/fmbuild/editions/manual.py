"""The compiled manual: every note, in the order of the fourteen chapters, as one HTML file.

The note text comes from the vault model's positions (links, metric references, headings,
blocks); where a link points comes from the project's `Resolver`; numbers come from the
committed evidence records. Rewrites are made on the text as placeholders (private-use
characters that Markdown leaves alone), the text is rendered with markdown-it-py, and the
placeholders are then filled with HTML built here, escaped. Wikilinks become in-document
anchors; images the vault holds are inlined as data URIs; a remote image becomes a plain link.
The document loads nothing: no script, no external stylesheet or font, and a
Content-Security-Policy that forbids any fetch, so it can be read offline and archived as is.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from markdown.extensions.toc import slugify
from markdown_it import MarkdownIt
from markdown_it.token import Token

from fmbuild import __version__, frameworks
from fmbuild.evidence.judgement import judge_all, judged_seeds
from fmbuild.evidence.contract import read_evidence_block
from fmbuild.site.anchors import PageIds, opens_with_h1, slug
from fmbuild.site.edits import EditSet
from fmbuild.site.evidence_view import EvidenceBook, format_value
from fmbuild.site.sanitize import TAG as HTML_TAG
from fmbuild.site.sanitize import tag_is_safe
from fmbuild.site.source import Source, read_source
from fmbuild.vault.model import Link, LinkKind, LogRef, Note
from fmbuild.vault.resolve import Resolution

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.editions.gitinfo import Commit
    from fmbuild.editions.readiness import EvidenceStanding
    from fmbuild.vault.model import Vault
    from fmbuild.vault.resolve import Resolver

FRAG, FRAG_END = "\ue000", "\ue001"  # an inline HTML fragment, by index
MARK, MARK_END = "\ue002", "\ue003"  # an attribute for the enclosing block, by index
_PRIVATE = re.compile("[\ue000-\ue003]")
_FRAG = re.compile(f"{FRAG}(\\d+){FRAG_END}")
_BLOCK_FRAG = re.compile(f"<p>{FRAG}(\\d+){FRAG_END}</p>")
_MARK = re.compile(f"[ \\t]*{MARK}(\\d+){MARK_END}")
_HEADING_LINE = re.compile(r"^( {0,3}#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*$")
_CALLOUT = re.compile(r"^((?:[ \t]*>[ \t]?)+)\[!([A-Za-z][\w-]*)\]([+-]?)[ \t]*(.*)$")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}
MAX_INLINE_IMAGE = 2 * 1024 * 1024
MAX_EMBED_DEPTH = 3  # deeper (or circular) embeds become links
TYPE_ORDER = {"reference": 0, "technique": 1, "pattern": 2, "anti-pattern": 3, "playbook": 4, "command-sheet": 5}
TYPE_LABEL = {"technique": "Technique", "pattern": "Pattern", "anti-pattern": "Anti-pattern",
              "playbook": "Playbook", "command-sheet": "Command sheet", "reference": "Reference", "source": "Source"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def esc(text: Any) -> str:
    return html.escape(str(text if text is not None else ""), quote=True)


@dataclass
class _NotePlan:
    anchor: str
    headings: list[str]  # one per note.headings entry
    blocks: dict[str, str]  # block id (lower) -> anchor
    drop_first_h1: bool


@dataclass
class _Rendering:
    fragments: list[str] = field(default_factory=list)
    marks: list[tuple[str, str]] = field(default_factory=list)  # (kind, value): id | class

    def fragment(self, markup: str) -> str:
        self.fragments.append(markup)
        return f"{FRAG}{len(self.fragments) - 1}{FRAG_END}"

    def mark(self, kind: str, value: str) -> str:
        self.marks.append((kind, value))
        return f"{MARK}{len(self.marks) - 1}{MARK_END}"


class ManualCompiler:
    def __init__(self, config: Config, vault: Vault, resolver: Resolver,
                 standings: dict[str, EvidenceStanding]) -> None:
        self.config = config
        self.vault = vault
        self.resolver = resolver
        self.standings = standings
        self.book = EvidenceBook(config.evidence_root, config.evidence.path)
        self.ids = PageIds()
        for reserved in ("contents", "preface", "unplaced"):
            self.ids.reserve(reserved)
        for chapter in config.chapters:
            self.ids.reserve(f"chapter-{chapter.number}")
        self.sources: dict[str, Source] = {}
        self.plans = {path: self._plan(vault.notes[path]) for path in sorted(vault.notes)}
        self.md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(["table", "strikethrough"])
        self.md.add_render_rule("image", _render_image)

    # --- anchors ------------------------------------------------------------------------------

    def _source(self, note: Note) -> Source:
        found = self.sources.get(note.path)
        if found is None:
            found = self.sources[note.path] = read_source(self.vault.root, note)
        return found

    def _plan(self, note: Note) -> _NotePlan:
        anchor = self.ids.allocate("note-" + (slugify(note.path[:-3].replace("/", "-"), "-") or "untitled"))
        lines = self._source(note).text.split("\n")
        drop = opens_with_h1(note, lines)
        headings = []
        for index, heading in enumerate(note.headings):
            if index == 0 and drop:
                headings.append(anchor)  # the title heading is the note's own anchor
            else:
                headings.append(self.ids.allocate(f"{anchor}--{slug(heading.text) or 'section'}"))
        blocks = {b.id.lower(): self.ids.allocate(f"{anchor}--block-{b.id}") for b in note.blocks}
        return _NotePlan(anchor, headings, blocks, drop)

    # --- one note -----------------------------------------------------------------------------

    def note_html(self, note: Note, span: tuple[int, int] | None = None, chain: tuple[str, ...] = ()) -> str:
        """The note's body as HTML; with `span`, only that part of its text, embedded in another
        note (`chain` holds the embedding notes): then it carries no ids, which are its own page's."""
        src = self._source(note)
        # Private-use characters are the placeholders: a note cannot forge one (same length, so
        # the model's positions still hold).
        text = _PRIVATE.sub("\ufffd", src.text)
        plan = self.plans[note.path]
        own = not chain
        out = _Rendering()
        edits = EditSet()
        start, end = span if span is not None else (src.body_start, len(text))
        inside = lambda offset: start <= offset < end

        for a, b in src.comments:
            if b > start and a < end:
                a, b = max(a, start), min(b, end)
                edits.add(a, b, "\n" * text.count("\n", a, b))
        for index, heading in enumerate(note.headings):
            line_start, line_end = src.line_span(heading.line)
            if not inside(line_start):
                continue
            if own and index == 0 and plan.drop_first_h1:
                edits.add(line_start, line_end, "")
                continue
            m = _HEADING_LINE.match(text[line_start:line_end])
            if own and m is not None and (m.group(2) or "").strip():
                edits.add(line_start + m.end(2), line_start + m.end(2), " " + out.mark("id", plan.headings[index]))
        for link in note.links:
            if link.kind is LinkKind.PROPERTY:
                continue
            offset = src.offset(link.line, link.column)
            if inside(offset) and text[offset : offset + len(link.raw)] == link.raw:
                edits.add(offset, offset + len(link.raw), self._link(note, link, src, offset, out, (*chain, note.path)))
        for ref in note.metric_refs:
            offset = src.offset(ref.line, ref.column)
            if inside(offset) and text[offset : offset + len(ref.raw)] == ref.raw:
                edits.add(offset, offset + len(ref.raw), out.fragment(self._metric(note, ref.module, ref.metric, ref.fmt)))
        for log in note.log_refs:
            offset = src.offset(log.line, log.column)
            if inside(offset) and text[offset : offset + len(log.raw)] == log.raw:
                edits.add(offset, offset + len(log.raw), out.fragment(self._log(note, log)))
        for block in note.blocks:
            line_start, line_end = src.line_span(block.line)
            m = re.search(rf"(?:^|[ \t])(\^{re.escape(block.id)})[ \t]*$", text[line_start:line_end])
            if m is not None and inside(line_start):
                marker = out.mark("id", plan.blocks[block.id.lower()]) if own else ""
                edits.add(line_start + m.start(1), line_start + m.end(1), marker)
        for m in HTML_TAG.finditer(text, start, end):
            if not src.protected(m.start(), m.end()) and not edits.overlaps(m.start(), m.end()) and not tag_is_safe(m):
                edits.add(m.start(), m.end(), html.escape(m.group(0), quote=False))
        self._callouts(src, text, edits, out, start, end)

        body = edits.apply(text, start, end)
        tokens = self.md.parse(body)
        _apply_marks(tokens, out.marks)
        rendered = self.md.renderer.render(tokens, self.md.options, {})
        # A block fragment (a transcluded note) alone in its paragraph replaces the paragraph.
        rendered = _BLOCK_FRAG.sub(lambda m: out.fragments[int(m.group(1))], rendered)
        rendered = _FRAG.sub(lambda m: out.fragments[int(m.group(1))], rendered)
        return _MARK.sub("", rendered)

    def _callouts(self, src: Source, text: str, edits: EditSet, out: _Rendering, start: int, end: int) -> None:
        for number in range(src.line_of(start), src.line_of(max(start, end - 1)) + 1):
            line_start, line_end = src.line_span(number)
            if line_start < start or line_end > end:
                continue
            m = _CALLOUT.match(text[line_start:line_end])
            if m is None or src.protected(line_start, line_end) or edits.overlaps(line_start, line_end):
                continue
            kind = m.group(2).lower()
            title = m.group(4).strip() or kind.capitalize()
            edits.add(line_start, line_end, f"{m.group(1)}**{title}** {out.mark('class', f'callout callout-{kind}')}")

    def _link(self, note: Note, link: Link, src: Source, offset: int, out: _Rendering, chain: tuple[str, ...]) -> str:
        """The replacement text of one link: an anchor, an inlined image, or a transcluded note."""
        res = self.resolver.resolve_link(link, note)
        target = self.vault.notes.get(res.path or "") if res.ok and res.is_note else None
        if (target is not None and link.kind is LinkKind.EMBED and len(chain) <= MAX_EMBED_DEPTH
                and target.path not in chain and _alone_on_line(src, offset, len(link.raw))):
            inner = self.note_html(target, self._embed_span(target, link, res), chain)
            source = self._anchor(note, link, res)
            return out.fragment(f'<div class="embed">\n<p class="embed-source">{source}</p>\n{inner}</div>')
        return out.fragment(self._anchor(note, link, res))

    def _embed_span(self, target: Note, link: Link, res: Resolution) -> tuple[int, int]:
        """Where the embedded text lies: the heading's section, the block's lines, or the body."""
        src = self._source(target)
        if link.heading is not None and res.heading is not None:
            start = src.line_span(res.heading.line)[0]
            after = False
            for heading in target.headings:
                if heading is res.heading:
                    after = True
                elif after and heading.level <= res.heading.level:
                    return start, src.line_span(heading.line)[0]
            return start, len(src.text)
        if link.block is not None and res.block_ok:
            line = next(b.line for b in target.blocks if b.id.lower() == link.block.strip().lower())
            first = line
            while first - 1 >= 1 and src.starts[first - 2] >= src.body_start:
                a, b = src.line_span(first - 1)
                if not src.text[a:b].strip() or _HEADING_LINE.match(src.text[a:b]):
                    break
                first -= 1
            return src.line_span(first)[0], src.line_span(line)[1]
        return src.body_start, len(src.text)

    def _anchor(self, note: Note, link: Link, res: Resolution) -> str:
        label = link.alias if (link.alias and not (link.is_embed and not res.is_note)) else None
        if not res.ok or res.path is None:
            why = "ambiguous: " + ", ".join(res.candidates) if res.status == "ambiguous" else "no such note or file"
            return f'<span class="broken" title="{esc(why)}">{esc(label or link.target or link.raw)}</span>'
        if not res.is_note:
            return self._attachment(link, res.path)
        target = self.vault.notes.get(res.path)
        if target is None:
            return f'<span class="broken" title="unreadable note">{esc(label or link.target)}</span>'
        plan = self.plans[target.path]
        anchor = plan.anchor
        sub = None
        if link.block is not None and res.block_ok:
            anchor = plan.blocks.get(link.block.strip().lower(), anchor)
        elif link.heading is not None and res.heading is not None:
            index = next((i for i, h in enumerate(target.headings) if h is res.heading), None)
            if index is not None:
                anchor, sub = plan.headings[index], res.heading.text
        if label is None:
            label = target.title + (f" › {sub}" if sub and link.target.strip() else "") if link.target.strip() else (sub or target.title)
        css = ' class="embed"' if link.is_embed else ""
        return f'<a{css} href="#{esc(anchor)}">{esc(label)}</a>'

    def _attachment(self, link: Link, path: str) -> str:
        name = PurePosixPath(path).name
        mime = IMAGE_TYPES.get(PurePosixPath(path).suffix.lower())
        if link.is_embed and mime is not None:
            file = self.vault.root / path
            try:
                data = file.read_bytes() if not file.is_symlink() and file.stat().st_size <= MAX_INLINE_IMAGE else None
            except OSError:
                data = None
            if data is not None:
                alt, width = name, ""
                if link.alias:
                    parts = [p.strip() for p in link.alias.split("|")]
                    size = re.match(r"^(\d+)(?:x(\d+))?$", parts[-1])
                    if size:
                        width = f' width="{size.group(1)}"'
                        parts = parts[:-1]
                    if parts and parts[0]:
                        alt = parts[0]
                uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
                return f'<img src="{uri}" alt="{esc(alt)}"{width}>'
        label = link.alias if (link.alias and not link.is_embed) else name
        return f'<span class="attachment" title="a file of the vault, not part of the Edition">{esc(label)}</span>'

    def _log(self, note: Note, ref: LogRef) -> str:
        """`{{log:...}}`: the recorded log lines, escaped, as a preformatted block."""
        module = self.book.named(ref.module) if ref.module else self.book.for_note(note)
        lines = module.log_lines(ref.event, ref.count) if module is not None and not ref.problem else []
        if lines:
            return f'<pre class="log"><code>{esc(chr(10).join(lines))}</code></pre>'
        return f'<span class="metric not-measured" title="{esc(ref.raw)}">log excerpt not recorded</span>'

    def _metric(self, note: Note, module_name: str | None, metric: str, fmt: str | None) -> str:
        module = self.book.named(module_name) if module_name else self.book.for_note(note)
        where = f"evidence/{module.name}: {metric}" if module else metric
        if module is not None:
            found, value = module.metric(metric)
            if found and module.record is not None:
                title = f"{where} (run of {module.record.date}, {module.record.status})"
                return f'<span class="metric" title="{esc(title)}">{esc(format_value(value, fmt))}</span>'
        return f'<span class="metric not-measured" title="{esc(where)}">not measured</span>'

    # --- the note's frame: title, facts, evidence -----------------------------------------------

    def _facts(self, note: Note) -> str:
        facts = [TYPE_LABEL.get(note.type or "", note.type or "Note"), f"maturity: {note.maturity or 'unset'}"]
        ids: list[str] = []
        for name in ("atlas", "owasp_llm", "owasp_ml", "atlas_mitigations"):
            value = note.frontmatter.get(name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item.strip():
                    entry = frameworks.lookup(item)
                    ids.append(f'<abbr title="{esc(entry.name)}">{esc(entry.id)}</abbr>' if entry else esc(item))
        parts = [esc(f) for f in facts]
        if ids:
            parts.append(" ".join(ids))
        tags = sorted({t for t in note.tag_names if not t.startswith("type/")})
        if tags:
            parts.append(" ".join(f'<span class="tag">#{esc(t)}</span>' for t in tags))
        return '<p class="facts">' + " · ".join(parts) + "</p>"

    def _evidence(self, note: Note) -> str:
        block = read_evidence_block(note.frontmatter.get("evidence"), self.config.evidence.path)
        if block is None or not block.name:
            return ""
        module = self.book.for_note(note)
        standing = self.standings.get(note.path)
        state = standing.state if standing else "none"
        lines = ['<aside class="evidence">',
                 (f'<p class="evidence-title">Evidence: <code>{esc(block.module)}</code> '
                  f'<span class="state state-{esc(state)}">{esc(state)}</span></p>')]
        if standing is not None and state != "passing":
            lines.append(f'<p class="unverified">Not verified at this Edition: {esc(standing.detail)}</p>')
        record = module.record if module else None
        if block.claims:
            seeds = judged_seeds(record, self.config.evidence.seeds) if record is not None else []
            lines.append("<table><thead><tr><th>metric</th><th>claim</th><th>measured</th>"
                         f"<th>range over seeds {esc(', '.join(map(str, seeds)))}</th><th>worst margin</th>"
                         "<th>verdict</th></tr></thead><tbody>")
            for j in judge_all(block.claims, record, self.config.evidence.seeds):
                measured = "not measured" if j.measured is None else format_value(j.measured)
                span = "–" if j.low is None else (format_value(j.low) if j.low == j.high
                                                   else f"{format_value(j.low)}–{format_value(j.high)}")
                worst = "–" if j.worst_margin is None else f"{j.worst_margin:+.4g}"
                verdict = j.verdict if j.ok or j.verdict.startswith(("flaky", "no record")) else f"not met: {j.message}"
                lines.append(f"<tr><td><code>{esc(j.metric)}</code></td><td><code>{esc(j.expected)}</code></td>"
                             f"<td>{esc(measured)}</td><td>{esc(span)}</td><td>{esc(worst)}</td><td>{esc(verdict)}</td></tr>")
            lines.append("</tbody></table>")
        if record is not None:
            env = record.environment if isinstance(record.environment, dict) else {}
            isolation = str(record.isolation)
            facts = [f"run of {record.date}", f"status {record.status}", f"device {record.device}",
                     f"{record.duration_s:.1f} s" if isinstance(record.duration_s, (int, float)) else "",
                     f"Python {env.get('python')}" if env.get("python") else "",
                     f"seeds {', '.join(map(str, record.seeds))} (values in the text: seed {record.seed})"]
            lines.append('<p class="run">' + esc(" · ".join(f for f in facts if f)) +
                         f' · isolation <abbr title="{esc(isolation)}">{esc(isolation.split(":")[0])}</abbr></p>')
        else:
            lines.append('<p class="run">No committed record.</p>')
        lines.append("</aside>")
        return "\n".join(lines)

    def _steps(self, note: Note) -> str:
        """A playbook's or command sheet's steps as its committed record ran them."""
        from fmbuild.playbooks.state import playbook_for, playbook_state

        if note.type not in ("playbook", "command-sheet"):
            return ""
        playbook = playbook_for(self.config, note.path, note.title)
        if playbook is None or not playbook.steps:
            return ""
        state, detail, record = playbook_state(self.config, note.path)
        recorded = {s.get("id"): s for s in (record or {}).get("steps", []) if isinstance(s, dict)}
        lines = ['<aside class="evidence steps">',
                 f'<p class="evidence-title">Steps run: {len(playbook.steps)} '
                 f'<span class="state state-{esc(state)}">{esc(state)}</span></p>']
        if state != "passing":
            lines.append(f'<p class="unverified">Not verified at this Edition: {esc(detail)}</p>')
        lines.append("<table><thead><tr><th>step</th><th>expected</th><th>status</th></tr></thead><tbody>")
        for step in playbook.steps:
            seen = recorded.get(step.id)
            status = str(seen.get("status")) if seen else "not run"
            lines.append(f"<tr><td><code>{esc(step.id)}</code></td><td>{esc('; '.join(step.expectations()))}</td>"
                         f"<td>{esc(status)}</td></tr>")
        lines.append("</tbody></table>")
        if record is not None:
            run_date = str(record.get("date", "?"))
            lines.append(f'<p class="run">{esc(f"run of {run_date}")}</p>')
        lines.append("</aside>")
        return "\n".join(lines)

    def article(self, note: Note) -> str:
        plan = self.plans[note.path]
        return "\n".join([
            f'<article class="note" id="{esc(plan.anchor)}">',
            f"<h2>{esc(note.title)}</h2>",
            self._facts(note),
            self.note_html(note),
            self._evidence(note),
            self._steps(note),
            "</article>",
        ])

    # --- the whole document ------------------------------------------------------------------------

    def ordered(self) -> tuple[dict[int, list[Note]], list[Note]]:
        numbers = {c.number for c in self.config.chapters}
        chapters: dict[int, list[Note]] = {n: [] for n in sorted(numbers)}
        unplaced: list[Note] = []
        for note in self.vault.notes.values():
            chapter = note.frontmatter.get("chapter")
            if isinstance(chapter, int) and not isinstance(chapter, bool) and chapter in numbers:
                chapters[chapter].append(note)
            else:
                unplaced.append(note)
        key = lambda n: (TYPE_ORDER.get(n.type or "", 9), n.title.casefold(), n.path)
        for notes in chapters.values():
            notes.sort(key=key)
        unplaced.sort(key=key)
        return chapters, unplaced

    def compile(self, name: str, commit: Commit) -> str:
        chapters, unplaced = self.ordered()
        title = f"{self.config.site.name} – Edition {name}"
        toc = ['<nav id="contents"><h2>Contents</h2><ol class="toc">']
        body: list[str] = []
        for chapter in self.config.chapters:
            notes = chapters[chapter.number]
            toc.append(f'<li><a href="#chapter-{chapter.number}">{chapter.number}. {esc(chapter.title)}</a>')
            if notes:
                toc.append("<ol>" + "".join(
                    f'<li><a href="#{esc(self.plans[n.path].anchor)}">{esc(n.title)}</a> '
                    f'<span class="maturity">{esc(n.maturity or "")}</span></li>' for n in notes) + "</ol>")
            toc.append("</li>")
            body.append(f'<section class="chapter" id="chapter-{chapter.number}">')
            body.append(f"<h1>Chapter {chapter.number}. {esc(chapter.title)}</h1>")
            if chapter.summary:
                body.append(f'<p class="summary">{esc(chapter.summary)}</p>')
            if not notes:
                body.append('<p class="empty">No note in this chapter yet.</p>')
            body.extend(self.article(n) for n in notes)
            body.append("</section>")
        toc.append("</ol>")
        if unplaced:
            toc.append('<p><a href="#unplaced">Notes outside the chapters</a></p>')
            body.append('<section class="chapter" id="unplaced"><h1>Notes outside the chapters</h1>')
            body.append('<p class="summary">Sources and notes that name no chapter of the table of contents.</p>')
            body.extend(self.article(n) for n in unplaced)
            body.append("</section>")
        toc.append("</nav>")
        count = len(self.vault.notes)
        header = [
            '<header class="edition">',
            f"<p class=\"kicker\">{esc(self.config.site.name)}</p>",
            f"<h1>Edition {esc(name)}</h1>",
            (f'<p>Frozen on {esc(commit.day)} from commit <code>{esc(commit.sha)}</code>: {count} note'
             f'{"s" if count != 1 else ""}. Every number comes from a committed evidence record; '
             "a note whose evidence did not stand at this Edition says so.</p>"),
            "</header>",
        ]
        return "\n".join([
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="fmbuild {esc(__version__)}">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *header,
            *toc,
            "<main>",
            *body,
            "</main>",
            (f'<footer><p>Compiled by fmbuild {esc(__version__)} from commit <code>{esc(commit.sha)}</code> '
             f"({esc(commit.iso)}).</p></footer>"),
            "</body>",
            "</html>",
            "",
        ])


def _alone_on_line(src: Source, offset: int, length: int) -> bool:
    """True when nothing but indentation surrounds the embed on its line (a block, not inline)."""
    line_start = src.text.rfind("\n", 0, offset) + 1
    line_end = src.text.find("\n", offset + length)
    line_end = len(src.text) if line_end < 0 else line_end
    return not src.text[line_start:offset].strip() and not src.text[offset + length : line_end].strip()


def _apply_marks(tokens: list[Token], marks: list[tuple[str, str]]) -> None:
    """Move each marker's id or class onto the block that holds it, put note headings below
    the note's title (an h2: body h1 and h2 become h3, h3 becomes h4, ...), and take the
    markers out of the text."""
    for i, token in enumerate(tokens):
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{max(3, min(6, int(token.tag[1]) + 1))}"
        if token.type != "inline" or MARK not in token.content:
            continue
        for m in _MARK.finditer(token.content):
            kind, value = marks[int(m.group(1))]
            wanted = "blockquote_open" if kind == "class" else None
            for j in range(i - 1, -1, -1):
                opener = tokens[j]
                if opener.nesting != 1 or opener.hidden:
                    continue
                if wanted is not None and opener.type != wanted:
                    continue
                if kind == "id" and opener.attrGet("id") is None:
                    opener.attrSet("id", value)
                elif kind == "class":
                    opener.attrSet("class", value)
                break
        token.content = _MARK.sub("", token.content).rstrip()
        for child in token.children or []:
            if MARK in child.content:
                child.content = _MARK.sub("", child.content)
        if token.children and token.children[-1].type == "text":
            token.children[-1].content = token.children[-1].content.rstrip()


def _render_image(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """Markdown images: only data URIs render; a remote image becomes a link, nothing loads."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    alt = _FRAG.sub("", _MARK.sub("", alt))
    if src.startswith("data:image/"):
        return f'<img src="{esc(src)}" alt="{esc(alt)}">'
    if re.match(r"^(https?:)?//", src, re.IGNORECASE):
        return f'<a class="remote-image" href="{esc(src)}">{esc(alt or src)}</a>'
    return f'<span class="attachment">{esc(alt or src)}</span>'


def compile_manual(config: Config, vault: Vault, resolver: Resolver, standings: dict[str, EvidenceStanding],
                   name: str, commit: Commit) -> str:
    return ManualCompiler(config, vault, resolver, standings).compile(name, commit)


STYLE = """
:root{--ink:#1d2327;--muted:#5f6b73;--line:#d7dde1;--accent:#00695c}
*{box-sizing:border-box}
body{margin:0 auto;max-width:52rem;padding:2rem 1.25rem 4rem;color:var(--ink);
font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header.edition{border-bottom:3px solid var(--accent);margin-bottom:2rem}
.kicker{text-transform:uppercase;letter-spacing:.08em;color:var(--accent);font-weight:600;margin:0}
h1,h2,h3,h4,h5,h6{line-height:1.25}
section.chapter>h1{border-bottom:1px solid var(--line);padding-bottom:.3rem;margin-top:3rem}
article.note{margin:2rem 0 3rem}
article.note>h2{font-size:1.6rem;margin-bottom:.2rem}
.facts,.summary,.run,.empty{color:var(--muted);font-size:.92rem}
.tag{white-space:nowrap}
nav#contents ol{padding-left:1.4rem}nav#contents ol.toc{list-style:none;padding-left:0}nav#contents .maturity{color:var(--muted);font-size:.85rem}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f5f7f8;border:1px solid var(--line);padding:.75rem;overflow-x:auto}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid var(--line);padding:.3rem .6rem;text-align:left}
blockquote{margin:1rem 0;padding:.2rem 1rem;border-left:4px solid var(--line);background:#fafbfb}
blockquote.callout{border-left-color:var(--accent)}
blockquote.callout-warning,blockquote.callout-danger,blockquote.callout-caution{border-left-color:#c62828}
aside.evidence{border:1px solid var(--line);border-left:4px solid var(--accent);padding:.5rem 1rem;margin:1.5rem 0}
.evidence-title{font-weight:600}.state{font-weight:600;text-transform:uppercase;font-size:.8rem}
.state-passing{color:#2e7d32}.state-failing,.state-stale,.state-none{color:#c62828}
.unverified{color:#c62828}.broken{color:#c62828;text-decoration:underline dotted}
.metric{font-weight:600}.not-measured{color:#c62828}
img{max-width:100%;height:auto}
@media print{nav#contents{page-break-after:always}section.chapter{page-break-before:always}a{color:inherit}}
""".strip()
