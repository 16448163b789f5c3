"""A note's neighbourhood drawn small on its own page: the note in the middle, the techniques it
concerns on the left, its controls on the right, the modules and playbooks beneath, joined by
lines coloured by the kind of edge. Plain HTML and SVG shapes laid out here, no script: it reads
in any browser, and the page's sanitizer lets nothing else through."""

from __future__ import annotations

import html

from fmbuild.graph import queries
from fmbuild.graph.model import MODULE_PREFIX
from fmbuild.site import urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, title_of
from fmbuild.vault.model import Note

# The typed relations drawn (links and framework mappings are listed elsewhere on the page).
EDGES = ("mitigates", "enables", "covers", "applies", "evidenced-by")
EDGE_COLOURS = {"mitigates": "#43a047", "enables": "#e53935", "covers": "#1e88e5", "applies": "#3949ab",
                "evidenced-by": "#78909c"}
WIDTH, BOX_W, BOX_H, GAP = 660, 160, 46, 10
MAX_PER_SIDE = 8
MAX_BELOW, PER_ROW = 6, 3
LABEL_CHARS = 42


def local_graph(note: Note, page: str, ctx: SiteContext) -> str:
    if note.path not in ctx.graph:
        return ""
    sides: dict[str, list[tuple[str, str, str, str]]] = {"left": [], "right": [], "below": []}
    seen: set[str] = set()
    for n in queries.neighbours(ctx.graph, note.path):
        if str(n.edge) not in EDGES or n.node in seen:
            continue
        drawn = _node(n.node, page, ctx)
        if drawn is None:
            continue
        seen.add(n.node)
        label, href, kind = drawn
        side = "below" if kind in ("module", "playbook") else "left" if kind == "technique" else "right"
        sides[side].append((label, href, kind, str(n.edge)))
    if not any(sides.values()):
        return ""
    boxes: list[tuple[int, int, str, str, str, str]] = []  # x, y, label, href, kind, edge
    more: list[str] = []
    column = max(len(sides["left"][:MAX_PER_SIDE]), len(sides["right"][:MAX_PER_SIDE]), 1)
    column_h = column * (BOX_H + GAP) - GAP
    for side, x in (("left", 0), ("right", WIDTH - BOX_W)):
        items = sides[side][:MAX_PER_SIDE]
        top = (column_h - (len(items) * (BOX_H + GAP) - GAP)) // 2
        for i, (label, href, kind, edge) in enumerate(items):
            boxes.append((x, top + i * (BOX_H + GAP), label, href, kind, edge))
        if len(sides[side]) > MAX_PER_SIDE:
            more.append(f"{len(sides[side]) - MAX_PER_SIDE} more on the {side}")
    below = sides["below"][:MAX_BELOW]
    row_y = column_h + 3 * GAP
    for i, (label, href, kind, edge) in enumerate(below):
        row, col = divmod(i, PER_ROW)
        count = min(PER_ROW, len(below) - row * PER_ROW)
        left = (WIDTH - (count * BOX_W + (count - 1) * GAP)) // 2
        boxes.append((left + col * (BOX_W + GAP), row_y + row * (BOX_H + GAP), label, href, kind, edge))
    if len(sides["below"]) > len(below):
        more.append(f"{len(sides['below']) - len(below)} more beneath")
    height = max(column_h, max((b[1] + BOX_H for b in boxes), default=BOX_H))
    cx, cy = (WIDTH - BOX_W) // 2, (column_h - BOX_H) // 2
    lines = []
    for x, y, _label, _href, _kind, edge in boxes:
        x1, y1 = cx + BOX_W // 2, cy + BOX_H // 2
        x2, y2 = x + BOX_W // 2, y + BOX_H // 2
        if y >= column_h:  # beneath: from the bottom of the centre to the top of the box
            y1, y2 = cy + BOX_H, y
        else:
            x1 = cx if x < cx else cx + BOX_W
            x2 = x + BOX_W if x < cx else x
        lines.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{EDGE_COLOURS[edge]}" stroke-width="2"></line>')
    parts = [f'<div class="fm-local-graph" role="group" aria-label="Neighbourhood of this note" '
             f'style="width: {WIDTH}px; height: {height}px">',
             f'<svg class="fm-local-graph__edges" width="{WIDTH}" height="{height}" viewbox="0 0 {WIDTH} {height}" '
             f'aria-hidden="true">{"".join(lines)}</svg>',
             _box(cx, cy, title_of(note), "", note.type or "note", "", centre=True)]
    parts += [_box(x, y, label, href, kind, edge) for x, y, label, href, kind, edge in boxes]
    parts.append("</div>")
    if more:
        parts.append(f'<p class="fm-local-graph__more">{html.escape("; ".join(more))}: see Relations below.</p>')
    return "".join(parts)


def _box(x: int, y: int, label: str, href: str, kind: str, edge: str, centre: bool = False) -> str:
    short = label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1].rstrip() + "…"
    tip = f"{label} ({kind}{', ' + edge if edge else ''})"
    style = f"left: {x}px; top: {y}px; width: {BOX_W}px; height: {BOX_H}px"
    classes = f"fm-local-graph__node fm-type--{html.escape(kind)}" + (" fm-local-graph__node--centre" if centre else "")
    if centre or not href:
        return f'<span class="{classes}" style="{style}" title="{html.escape(tip)}">{html.escape(short)}</span>'
    return f'<a class="{classes}" href="{html.escape(href)}" style="{style}" title="{html.escape(tip)}">{html.escape(short)}</a>'


def _node(node: str, page: str, ctx: SiteContext) -> tuple[str, str, str] | None:
    target = ctx.vault.notes.get(node)
    if target is not None:
        return title_of(target), urls.relative_url(page, docs_path(target)), target.type or "note"
    if node.startswith(MODULE_PREFIX):
        name = node[len(MODULE_PREFIX):]
        return name, urls.relative_url(page, urls.EVIDENCE_REPORT) + f"#module-{name.rsplit('/', 1)[-1]}", "module"
    return None
