"""The interactive graph: the graph's nodes and edges inlined as JSON, drawn by the vendored
Cytoscape.js and `fmbuild-graph.js` (pan, zoom, filter by type, search, click to open)."""

from __future__ import annotations

import html
import json
from typing import Any

from fmbuild.graph.model import MODULE_PREFIX
from fmbuild.site import urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, title_of
from fmbuild.site.pages import Page


def graph_data(ctx: SiteContext, page: str) -> dict[str, Any]:
    nodes = []
    for node, attrs in ctx.graph.nodes(data=True):
        kind = str(attrs.get("type", "note"))
        note = ctx.vault.notes.get(node)
        if note is not None:
            label, url = title_of(note), urls.relative_url(page, docs_path(note))
        elif node.startswith(MODULE_PREFIX):
            name = node[len(MODULE_PREFIX):].rsplit("/", 1)[-1]
            label = node[len(MODULE_PREFIX):]
            url = urls.relative_url(page, urls.EVIDENCE_REPORT) + f"#module-{name}"
        else:
            label = str(attrs.get("title") or attrs.get("name") or node)
            url = str(attrs.get("url") or "")
            if not url.startswith(("https://", "http://")):
                url = ""
        nodes.append({
            "id": node, "label": label, "type": kind, "url": url,
            "maturity": str(attrs.get("maturity") or ""),
        })
    edges = [
        {"source": s, "target": t, "type": str(attrs.get("type", key))}
        for s, t, key, attrs in ctx.graph.edges(keys=True, data=True)
    ]
    return {"nodes": nodes, "edges": edges}


def inline_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no `<!--`)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def graph_page(ctx: SiteContext) -> Page:
    page = urls.GRAPH
    data = graph_data(ctx, page)
    assets = urls.relative_url(page, urls.ASSETS_DIR, to_is_docs=False)
    counts: dict[str, int] = {}
    for n in data["nodes"]:
        counts[n["type"]] = counts.get(n["type"], 0) + 1
    body = [
        "# Graph { #graph }",
        "",
        ("Techniques, controls, playbooks and evidence modules, with their typed edges, one column per kind "
         "of node. Drag to pan, scroll to zoom (names appear as you zoom in), hover a node to name it and its "
         "neighbours, click it to open it; filter by type, or search by title and press Enter to go there."),
        "",
        f'<div class="fm-graph" data-node-count="{len(data["nodes"])}">',
        '<div class="fm-graph__controls">',
        '<input type="search" class="fm-graph__search" placeholder="Find a node" aria-label="Find a node">',
        *[
            f'<label class="fm-graph__filter"><input type="checkbox" value="{html.escape(kind)}"'
            f'{"" if kind == "framework" else " checked"}> {html.escape(kind)} ({counts[kind]})</label>'
            for kind in sorted(counts)
        ],
        '<button type="button" class="fm-graph__fit">Fit</button>',
        "</div>",
        '<div class="fm-graph__canvas" id="fm-graph-canvas"></div>',
        '<div class="fm-graph__legend"></div>',
        '<p class="fm-graph__status" aria-live="polite"></p>',
        "</div>",
        f'<script type="application/json" id="fm-graph-data">{inline_json(data)}</script>',
        f'<script src="{assets}/vendor/cytoscape.min.js"></script>',
        f'<script src="{assets}/fmbuild-graph.js"></script>',
    ]
    return Page(page, "Graph", "\n".join(body), {"hide": ["toc"], "search": {"exclude": True}})
