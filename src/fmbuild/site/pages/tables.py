"""The technique x control coverage matrix, the evidence report, and the tag pages."""

from __future__ import annotations

import html
from collections import defaultdict

from fmbuild.graph import coverage
from fmbuild.site import urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, md_escape, title_of
from fmbuild.site.pages import Page
from fmbuild.site.pages.overview import maturity_badge, note_link

# Past this many cells a matrix is unreadable (and heavy); the page lists the same edges instead.
MAX_MATRIX_CELLS = 40_000


def _a(ctx: SiteContext, page: str, node: str) -> str:
    note = ctx.vault.notes.get(node)
    title = title_of(note) if note else node
    if note is None:
        return html.escape(title)
    return f'<a href="{urls.relative_url(page, docs_path(note))}">{html.escape(title)}</a>'


def coverage_page(ctx: SiteContext) -> Page:
    page = urls.COVERAGE
    techniques, controls, cells = coverage.matrix(ctx.graph)
    lines = [
        "# Coverage matrix { #coverage }",
        "",
        ("Rows are techniques, columns the patterns (controls) that mitigate them and the "
         "anti-patterns that enable them. **M** mitigates, **E** enables; a filled mark means the "
         "control's evidence is verified."),
        "",
    ]
    if not techniques:
        lines.append("No technique note yet.")
        return Page(page, "Coverage matrix", "\n".join(lines), {"search": {"exclude": True}})
    if controls and len(techniques) * len(controls) <= MAX_MATRIX_CELLS:
        rows = ['<div class="fm-matrix-wrap"><table class="fm-matrix">', "<thead><tr><th>Technique</th>"]
        for c in controls:
            kind = html.escape(str(ctx.graph.nodes[c].get("type", "")))
            rows.append(f'<th class="fm-matrix__control fm-type--{kind}"><span>{_a(ctx, page, c)}</span></th>')
        rows.append("</tr></thead><tbody>")
        for t in techniques:
            rows.append(f"<tr><th>{_a(ctx, page, t)}</th>")
            for c in controls:
                cell = cells.get((t, c))
                if cell is None:
                    rows.append("<td></td>")
                    continue
                mark = "M" if cell.edge == "mitigates" else "E"
                state = "verified" if cell.verified else "unverified"
                tip = f"{cell.edge}{': ' + cell.use if cell.use else ''} ({state})"
                rows.append(f'<td class="fm-cell fm-cell--{cell.edge} fm-cell--{state}" title="{html.escape(tip)}">{mark}</td>')
            rows.append("</tr>")
        rows.append("</tbody></table></div>")
        lines += ["\n".join(rows), ""]
    else:
        lines.append("The matrix is too large to draw; each technique with its controls:")
        lines.append("")
        by_technique = defaultdict(list)
        for (t, c), cell in sorted(cells.items()):
            by_technique[t].append((c, cell))
        for t in techniques:
            note = ctx.vault.notes.get(t)
            if note is None:
                continue
            items = [
                f"{'mitigated by' if cell.edge == 'mitigates' else 'enabled by'} "
                + (note_link(ctx.vault.notes[c], page) if c in ctx.vault.notes else md_escape(c))
                for c, cell in by_technique.get(t, [])
            ]
            lines.append(f"- {note_link(note, page)}: " + ("; ".join(items) if items else "**no control**"))
        lines.append("")
    uncontrolled = [t for t in coverage.uncontrolled(ctx.graph) if t in ctx.vault.notes]
    lines += ["## Techniques with no control { #uncontrolled }", ""]
    lines += [f"- {note_link(ctx.vault.notes[t], page)}" for t in uncontrolled] or ["None: every technique has a control."]
    return Page(page, "Coverage matrix", "\n".join(lines), {"search": {"exclude": True}})


def report_page(ctx: SiteContext) -> Page:
    page = urls.EVIDENCE_REPORT
    for note in ctx.vault.notes.values():
        ctx.evidence.for_note(note)
    lines = [
        "# Evidence report { #evidence-report }",
        "",
        ("Every evidence module with its committed record. Click a column heading to sort. "
         "A stale record predates a change to its module; re-run it with `fmbuild verify`."),
        "",
    ]
    modules = sorted(ctx.evidence.modules.values(), key=lambda m: m.name)
    if not modules:
        lines.append("No evidence module yet.")
        return Page(page, "Evidence report", "\n".join(lines))
    rows = [
        '<table class="fm-report fm-sortable">',
        ("<thead><tr><th>Module</th><th>Status</th><th>Claims met</th><th data-sort=\"number\">Duration (s)</th>"
         "<th>Device</th><th>Date</th><th>Notes</th><th>Run</th></tr></thead>"),
        "<tbody>",
    ]
    for m in modules:
        rec = m.record
        met = total = 0
        if rec is not None:
            claims = [c for c in rec.claims if isinstance(c, dict)]
            total = len(claims)
            met = sum(1 for c in claims if c.get("ok"))
        status = m.status + (" (stale)" if rec is not None and m.fresh is False else "")
        notes = ", ".join(_a(ctx, page, n) for n in sorted(m.notes))
        duration = f"{rec.duration_s:.1f}" if rec is not None and isinstance(rec.duration_s, (int, float)) else ""
        rows.append(
            f'<tr id="module-{html.escape(m.name)}"><td><code>{html.escape(ctx.evidence_path)}/{html.escape(m.name)}</code></td>'
            f'<td><span class="fm-badge fm-status--{html.escape(m.status.replace(" ", "-"))}">{html.escape(status)}</span></td>'
            f"<td>{f'{met} / {total}' if rec is not None else ''}</td>"
            f'<td data-value="{html.escape(duration)}">{html.escape(duration)}</td>'
            f"<td>{html.escape(str(rec.device)) if rec else ''}</td>"
            f"<td>{html.escape(str(rec.date)) if rec else ''}</td>"
            f"<td>{notes}</td><td>{_run_details(rec)}</td></tr>"
        )
    rows += ["</tbody>", "</table>"]
    lines += ["\n".join(rows), ""]
    return Page(page, "Evidence report", "\n".join(lines), {"hide": ["toc"]})


def _run_details(rec: object) -> str:
    """Isolation and environment of a record, folded: on demand, not a screen per row."""
    if rec is None:
        return ""
    env = getattr(rec, "environment", None)
    env = env if isinstance(env, dict) else {}
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    items = [("isolation", str(getattr(rec, "isolation", "") or "")),
             ("python", " ".join(str(env[k]) for k in ("python", "implementation", "platform") if env.get(k))),
             ("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) or "none")]
    if isinstance(env.get("worker"), dict):
        items.append(("worker", ", ".join(f"{k}: {v}" for k, v in env["worker"].items())))
    body = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    return f'<details class="fm-run-details"><summary>isolation, environment</summary><dl class="fm-run">{body}</dl></details>'


def tag_pages(ctx: SiteContext) -> list[Page]:
    by_tag: dict[str, list] = defaultdict(list)
    for note in ctx.vault.notes.values():
        for name in dict.fromkeys(t.name for t in note.tags):
            by_tag[name].append(note)
    pages = []
    index_lines = ["# Tags { #tags }", ""]
    if not by_tag:
        index_lines.append("No note carries a tag yet.")
    for name in sorted(by_tag):
        path = urls.tag_page(name)
        notes = sorted(by_tag[name], key=lambda n: title_of(n).lower())
        index_lines.append(f"- [#{md_escape(name)}]({urls.relative_md(urls.TAGS_INDEX, path)}) ({len(notes)})")
        body = [f"# \\#{md_escape(name)} {{ #tag }}", "", f"{len(notes)} note(s) carry this tag.", ""]
        body += [f"- {note_link(n, path)} {maturity_badge(n.maturity)}" for n in notes]
        body += ["", f"[All tags]({urls.relative_md(path, urls.TAGS_INDEX)})"]
        pages.append(Page(path, f"#{name}", "\n".join(body)))
    pages.insert(0, Page(urls.TAGS_INDEX, "Tags", "\n".join(index_lines)))
    return pages
