"""Questions about one node: the reverse direction of declared relations, backlinks, neighbours.

Relations are declared on the control; these functions read them backwards, so a technique's
controls are never typed twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

from fmbuild.graph.model import EdgeType, is_note_node


@dataclass(frozen=True, slots=True)
class Neighbour:
    node: str
    edge: str  # the edge type
    outgoing: bool  # True: node -> neighbour; False: neighbour -> node
    attrs: dict[str, Any]


def _in_edges(graph: nx.MultiDiGraph, node: str, edge: EdgeType) -> Iterator[tuple[str, dict[str, Any]]]:
    for source, _target, key, attrs in graph.in_edges(node, keys=True, data=True):
        if key == edge:
            yield source, attrs


def _out_edges(graph: nx.MultiDiGraph, node: str, edge: EdgeType) -> Iterator[tuple[str, dict[str, Any]]]:
    for _source, target, key, attrs in graph.out_edges(node, keys=True, data=True):
        if key == edge:
            yield target, attrs


def controls_of(graph: nx.MultiDiGraph, technique: str, include_deprecated: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Patterns that mitigate the technique, with each edge's attrs (`use`, `line`)."""
    return sorted(
        (
            (source, attrs)
            for source, attrs in _in_edges(graph, technique, EdgeType.MITIGATES)
            if include_deprecated or not graph.nodes[source].get("deprecated")
        ),
        key=lambda item: item[0],
    )


def enablers_of(graph: nx.MultiDiGraph, technique: str) -> list[tuple[str, dict[str, Any]]]:
    """Anti-patterns that enable the technique."""
    return sorted(_in_edges(graph, technique, EdgeType.ENABLES), key=lambda item: item[0])


def techniques_of(graph: nx.MultiDiGraph, control: str) -> list[tuple[str, dict[str, Any]]]:
    """Techniques a pattern mitigates or an anti-pattern enables."""
    found = list(_out_edges(graph, control, EdgeType.MITIGATES)) + list(_out_edges(graph, control, EdgeType.ENABLES))
    return sorted(found, key=lambda item: item[0])


def playbooks_of(graph: nx.MultiDiGraph, node: str) -> list[str]:
    """Playbooks that cover a technique or apply a pattern."""
    found = {s for s, _ in _in_edges(graph, node, EdgeType.COVERS)} | {s for s, _ in _in_edges(graph, node, EdgeType.APPLIES)}
    return sorted(found)


def backlinks(graph: nx.MultiDiGraph, node: str) -> list[str]:
    """Notes with any edge to `node` (typed or a plain link)."""
    return sorted({s for s in graph.predecessors(node) if is_note_node(graph.nodes[s]) and s != node})


def neighbours(graph: nx.MultiDiGraph, node: str) -> list[Neighbour]:
    """Every edge touching `node`, both directions, in a stable order."""
    found = [
        Neighbour(target, key, True, dict(attrs)) for _s, target, key, attrs in graph.out_edges(node, keys=True, data=True)
    ]
    found += [
        Neighbour(source, key, False, dict(attrs)) for source, _t, key, attrs in graph.in_edges(node, keys=True, data=True)
    ]
    return sorted(found, key=lambda n: (n.edge, not n.outgoing, n.node))
