"""The graph in four formats: JSON (node-link), GraphML (Gephi, yEd, networkx), DOT
(Graphviz) and Mermaid (a diagram to embed in a note).

Every format is deterministic (sorted nodes and edges), so an export can be committed and
diffed. Attributes that a format cannot hold are adapted: GraphML and DOT get lists joined with
"; " and drop empty values.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import networkx as nx

from fmbuild.graph.model import EdgeType, NodeType
from fmbuild.graph.views import with_edge_types

FORMATS = ("json", "graphml", "dot", "mermaid")

# Colours and shapes per node type, shared by DOT and Mermaid.
_STYLE: dict[str, tuple[str, str, tuple[str, str]]] = {  # type -> (fill, DOT shape, Mermaid brackets)
    NodeType.TECHNIQUE: ("#f4a582", "box", ("[", "]")),
    NodeType.PATTERN: ("#92c5de", "ellipse", ("([", "])")),
    NodeType.ANTI_PATTERN: ("#ca0020", "octagon", ("{{", "}}")),
    NodeType.PLAYBOOK: ("#b8e186", "folder", ("[[", "]]")),
    NodeType.SOURCE: ("#e0e0e0", "note", ("[", "]")),
    NodeType.NOTE: ("#ffffff", "note", ("[", "]")),
    NodeType.MODULE: ("#fddbc7", "component", ("[(", ")]")),
    NodeType.FRAMEWORK: ("#d1e5f0", "tab", (">", "]")),
}
_EDGE_STYLE: dict[str, str] = {  # type -> DOT style
    EdgeType.MITIGATES: "bold",
    EdgeType.ENABLES: "dashed",
    EdgeType.LINKS_TO: "dotted",
}


def _sorted_nodes(graph: nx.MultiDiGraph) -> list[tuple[str, dict[str, Any]]]:
    return sorted(graph.nodes(data=True), key=lambda item: item[0])


def _sorted_edges(graph: nx.MultiDiGraph) -> list[tuple[str, str, str, dict[str, Any]]]:
    return sorted(graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2]))


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


# --- JSON -------------------------------------------------------------------------------------


def to_dict(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """`{"directed", "multigraph", "frameworks", "nodes": [{id, type, ...}], "edges":
    [{source, target, type, ...}]}`; None-valued attributes are left out."""
    return {
        "directed": True,
        "multigraph": True,
        "frameworks": dict(graph.graph.get("frameworks") or {}),
        "nodes": [{"id": node, **_clean(attrs)} for node, attrs in _sorted_nodes(graph)],
        "edges": [
            {"source": s, "target": t, **_clean({**attrs, "type": attrs.get("type", key)})}
            for s, t, key, attrs in _sorted_edges(graph)
        ],
    }


def to_json(graph: nx.MultiDiGraph, indent: int | None = 2) -> str:
    return json.dumps(to_dict(graph), indent=indent, ensure_ascii=False, sort_keys=False) + "\n"


def from_dict(data: dict[str, Any]) -> nx.MultiDiGraph:
    """The inverse of `to_dict` (for tools that read an exported graph back)."""
    graph = nx.MultiDiGraph(frameworks=dict(data.get("frameworks") or {}))
    for node in data["nodes"]:
        attrs = dict(node)
        graph.add_node(attrs.pop("id"), **attrs)
    for edge in data["edges"]:
        attrs = dict(edge)
        source, target = attrs.pop("source"), attrs.pop("target")
        graph.add_edge(source, target, key=attrs["type"], **attrs)
    return graph


# --- GraphML ----------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _flat(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _scalar(v) for k, v in attrs.items() if v is not None and v != [] and v != ""}


def to_graphml(graph: nx.MultiDiGraph) -> str:
    """GraphML with a `label` on every node (what Gephi and yEd display)."""
    flat = nx.MultiDiGraph()
    versions = graph.graph.get("frameworks") or {}
    flat.graph["frameworks"] = "; ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    for node, attrs in _sorted_nodes(graph):
        label = attrs.get("label") or attrs.get("title") or node
        flat.add_node(node, **_flat({**attrs, "label": label}))
    for source, target, key, attrs in _sorted_edges(graph):
        flat.add_edge(source, target, key=key, **_flat({**attrs, "label": attrs.get("type", key)}))
    buffer = io.BytesIO()
    nx.write_graphml(flat, buffer, encoding="utf-8", prettyprint=True)  # with the XML declaration
    return buffer.getvalue().decode("utf-8")


# --- DOT --------------------------------------------------------------------------------------


def _dot_quote(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{text}"'


def _dot_attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_dot_quote(value)}" for key, value in attrs.items())


def to_dot(graph: nx.MultiDiGraph, name: str = "field_manual") -> str:
    """A Graphviz digraph; node and edge attributes ride along (Graphviz ignores unknown ones)."""
    lines = [
        f"digraph {_dot_quote(name)} {{",
        '  graph [rankdir="LR", fontname="Helvetica", overlap="false"];',
        '  node [style="filled", fontname="Helvetica", fontsize="10"];',
        '  edge [fontname="Helvetica", fontsize="8"];',
    ]
    for node, attrs in _sorted_nodes(graph):
        fill, shape, _mermaid = _STYLE.get(attrs.get("type", ""), _STYLE[NodeType.NOTE])
        label = attrs.get("label") or attrs.get("title") or node
        visual = {"label": label, "shape": shape, "fillcolor": fill}
        if attrs.get("url"):
            visual["URL"] = attrs["url"]
        data = {f"fm_{k}": v for k, v in _flat(attrs).items() if k not in ("label", "url")}
        lines.append(f"  {_dot_quote(node)} [{_dot_attrs({**visual, **data})}];")
    for source, target, key, attrs in _sorted_edges(graph):
        edge_type = attrs.get("type", key)
        visual = {"label": edge_type, "style": _EDGE_STYLE.get(edge_type, "solid")}
        data = {f"fm_{k}": v for k, v in _flat(attrs).items()}
        lines.append(f"  {_dot_quote(source)} -> {_dot_quote(target)} [{_dot_attrs({**visual, **data})}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- Mermaid ----------------------------------------------------------------------------------


def _mermaid_text(value: Any) -> str:
    # Mermaid labels are quoted; quotes and angle brackets become entity codes.
    return str(value).replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;").replace("\n", " ")


def to_mermaid(graph: nx.MultiDiGraph, fenced: bool = False, edge_types: Iterable[str] | None = None) -> str:
    """A `flowchart LR` diagram. `fenced` wraps it in a ```mermaid block, ready to paste into a
    note; `edge_types` keeps only those edges (and the nodes they touch)."""
    if edge_types is not None:
        graph = with_edge_types(graph, edge_types)
    nodes = _sorted_nodes(graph)
    ids = {node: f"n{i}" for i, (node, _attrs) in enumerate(nodes)}
    lines = ["flowchart LR"]
    for node, attrs in nodes:
        _fill, _shape, (open_, close) = _STYLE.get(attrs.get("type", ""), _STYLE[NodeType.NOTE])
        label = _mermaid_text(attrs.get("label") or attrs.get("title") or node)
        lines.append(f'  {ids[node]}{open_}"{label}"{close}')
    for source, target, key, attrs in _sorted_edges(graph):
        edge_type = attrs.get("type", key)
        if edge_type in (EdgeType.ENABLES, EdgeType.LINKS_TO):
            arrow = "-.->"
        elif edge_type == EdgeType.MITIGATES:
            arrow = "==>"
        else:
            arrow = "-->"
        lines.append(f"  {ids[source]} {arrow}|{_mermaid_text(edge_type)}| {ids[target]}")
    for node_type, (fill, _shape, _brackets) in _STYLE.items():
        members = [ids[n] for n, a in nodes if a.get("type") == node_type]
        if members:
            class_name = str(node_type).replace("-", "_")
            lines.append(f"  classDef {class_name} fill:{fill},stroke:#333,color:#000")
            lines.append(f"  class {','.join(members)} {class_name}")
    body = "\n".join(lines) + "\n"
    return f"```mermaid\n{body}```\n" if fenced else body


def export(graph: nx.MultiDiGraph, fmt: str) -> str:
    if fmt == "json":
        return to_json(graph)
    if fmt == "graphml":
        return to_graphml(graph)
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "mermaid":
        return to_mermaid(graph, fenced=True)
    raise ValueError(f"unknown graph format {fmt!r} (known: {', '.join(FORMATS)})")
