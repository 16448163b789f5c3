"""Smaller views of the graph for export: some edge types only, or one note's neighbourhood
(a Mermaid diagram to embed in that note)."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from fmbuild.graph.model import EdgeType


def with_edge_types(graph: nx.MultiDiGraph, edge_types: Iterable[str]) -> nx.MultiDiGraph:
    """The edges of the given types and the nodes they touch."""
    wanted = {str(EdgeType(t)) for t in edge_types}
    view = nx.MultiDiGraph(**graph.graph)
    for source, target, key, attrs in graph.edges(keys=True, data=True):
        if key in wanted:
            view.add_node(source, **graph.nodes[source])
            view.add_node(target, **graph.nodes[target])
            view.add_edge(source, target, key=key, **attrs)
    return view


def neighbourhood(graph: nx.MultiDiGraph, node: str, depth: int = 1) -> nx.MultiDiGraph:
    """Nodes within `depth` edges of `node` (either direction) and every edge among them."""
    if node not in graph:
        raise KeyError(node)
    if depth < 0:
        raise ValueError("depth must be 0 or more")
    near = nx.single_source_shortest_path_length(graph.to_undirected(as_view=True), node, cutoff=depth)
    view = nx.MultiDiGraph(**graph.graph)
    view.add_nodes_from((n, graph.nodes[n]) for n in near)
    view.add_edges_from(
        (s, t, k, a) for s, t, k, a in graph.edges(keys=True, data=True) if s in near and t in near
    )
    return view
