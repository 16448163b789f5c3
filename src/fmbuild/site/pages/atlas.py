"""The ATLAS matrix: ATLAS's tactics as columns, their techniques under them, each cell saying
whether the manual covers it and whether a control with verified evidence stands behind it."""

from __future__ import annotations

import html

from fmbuild import frameworks
from fmbuild.graph import atlas_coverage
from fmbuild.graph.atlas_coverage import COVERED, NONE, VERIFIED
from fmbuild.site import urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, title_of
from fmbuild.site.pages import Page

STATE = {VERIFIED: "verified", COVERED: "covered", NONE: "uncovered"}
SAYS = {VERIFIED: "covered, a control with verified evidence stands behind it",
        COVERED: "covered, no verified control yet", NONE: "not covered by the manual yet"}


def atlas_page(ctx: SiteContext) -> Page:
    page = urls.ATLAS_MATRIX
    columns = atlas_coverage.matrix(ctx.graph)
    version = frameworks.versions().get(frameworks.ATLAS, "")
    covered = {c.technique.id: c for col in columns for c in col.cells if c.score}
    verified = sum(1 for c in covered.values() if c.score == VERIFIED)
    total = len({c.technique.id for col in columns for c in col.cells})
    lines = [
        "# ATLAS matrix { #atlas-matrix }",
        "",
        (f"MITRE ATLAS {html.escape(version)}: its tactics as columns and their techniques under them, as the "
         "ATLAS matrix draws them. A **green** cell is covered by a technique note with a control whose "
         "evidence is verified; **amber**, covered without a verified control yet; a pale cell is a "
         f"technique the manual does not cover yet. The manual covers {len(covered)} of {total} ATLAS "
         f"techniques, {verified} of them with a verified control. `fmbuild graph --format navigator` "
         "exports the same coverage as a layer for the ATLAS Navigator."),
        "",
        '<p class="fm-atlas__legend">'
        + "".join(f'<span class="fm-atlas__cell fm-atlas--{STATE[s]}">{html.escape(SAYS[s])}</span>'
                  for s in (VERIFIED, COVERED, NONE)) + "</p>",
        "",
    ]
    rows = ['<div class="fm-matrix-wrap fm-atlas-wrap"><table class="fm-atlas"><thead><tr>']
    for col in columns:
        rows.append(
            f'<th><a href="{html.escape(col.tactic.url)}" '
            f'target="_blank" rel="noopener noreferrer">{html.escape(col.tactic.name)}</a>'
            f"<small>{col.covered} of {len(col.cells)}</small></th>"
        )
    rows.append("</tr></thead><tbody><tr>")
    for col in columns:
        rows.append("<td>")
        for cell in col.cells:
            rows.append(_cell(ctx, page, cell))
        rows.append("</td>")
    rows.append("</tr></tbody></table></div>")
    lines += ["\n".join(rows), ""]
    return Page(page, "ATLAS matrix", "\n".join(lines), {"search": {"exclude": True}, "hide": ["toc"]})


def _cell(ctx: SiteContext, page: str, cell: atlas_coverage.MatrixCell) -> str:
    t = cell.technique
    state = STATE[cell.score]
    name = f'<a class="fm-atlas__id" href="{html.escape(t.url)}" target="_blank" rel="noopener noreferrer">' \
           f"{html.escape(t.id)}</a> {html.escape(t.name)}"
    notes = []
    for path in cell.notes:
        note = ctx.vault.notes.get(path)
        if note is not None:
            notes.append(f'<a href="{urls.relative_url(page, docs_path(note))}">{html.escape(title_of(note))}</a>')
    via = [i for i in cell.via if i != t.id]
    extra = f' <small>(via {", ".join(html.escape(i) for i in via)})</small>' if via else ""
    notes_html = f'<span class="fm-atlas__notes">{", ".join(notes)}{extra}</span>' if notes else ""
    return (f'<div class="fm-atlas__cell fm-atlas--{state}" title="{html.escape(SAYS[cell.score])}">'
            f"{name}{notes_html}</div>")
