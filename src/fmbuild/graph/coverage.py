"""Coverage questions over the graph: which techniques a verified control mitigates, which
controls still lack verified evidence, which notes nothing links to, and the technique ×
control matrix the site renders.

A *control* is a pattern or an anti-pattern; only patterns mitigate. A control is *verified*
when its node says so (`build_graph` sets `verified` from the evidence records). Deprecated
notes take no part: a deprecated technique needs no control and a deprecated pattern protects
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from fmbuild import frameworks
from fmbuild.graph.model import EdgeType, NodeType, is_note_node
from fmbuild.graph.queries import controls_of


def _live(graph: nx.MultiDiGraph, *types: NodeType) -> list[str]:
    wanted = {str(t) for t in types}
    return sorted(n for n, a in graph.nodes(data=True) if a.get("type") in wanted and not a.get("deprecated"))


def _techniques(graph: nx.MultiDiGraph) -> list[str]:
    return _live(graph, NodeType.TECHNIQUE)


def _verified(graph: nx.MultiDiGraph, node: str) -> bool:
    return bool(graph.nodes[node].get("verified"))


def uncovered(graph: nx.MultiDiGraph) -> list[str]:
    """Techniques that no pattern with verified evidence mitigates."""
    return [t for t in _techniques(graph) if not any(_verified(graph, c) for c, _ in controls_of(graph, t))]


def uncontrolled(graph: nx.MultiDiGraph) -> list[str]:
    """Techniques that no pattern mitigates at all (verified or not)."""
    return [t for t in _techniques(graph) if not controls_of(graph, t)]


def unverified_controls(graph: nx.MultiDiGraph) -> list[str]:
    """Patterns and anti-patterns whose evidence is not verified."""
    return [c for c in _live(graph, NodeType.PATTERN, NodeType.ANTI_PATTERN) if not _verified(graph, c)]


def idle_controls(graph: nx.MultiDiGraph) -> list[str]:
    """Patterns that mitigate nothing."""
    return [
        p
        for p in _live(graph, NodeType.PATTERN)
        if not any(k == EdgeType.MITIGATES for _s, _t, k in graph.out_edges(p, keys=True))
    ]


def orphans(graph: nx.MultiDiGraph) -> list[str]:
    """Notes that no other note links to, by any edge."""
    found = []
    for node, attrs in graph.nodes(data=True):
        if not is_note_node(attrs) or attrs.get("deprecated"):
            continue
        if not any(s != node and is_note_node(graph.nodes[s]) for s in graph.predecessors(node)):
            found.append(node)
    return sorted(found)


def atlas_tactics_of(graph: nx.MultiDiGraph, node: str) -> list[str]:
    """ATLAS tactic IDs of the ATLAS techniques a note maps to (sub-techniques: their parent's)."""
    tactics: set[str] = set()
    for _s, target, key in graph.out_edges(node, keys=True):
        attrs = graph.nodes[target]
        if key == EdgeType.MAPS_TO and attrs.get("framework") == frameworks.ATLAS and attrs.get("kind") == "technique":
            tactics.update(attrs.get("tactics") or [])
    return sorted(tactics)


def coverage_summary(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """How many techniques have a control, and a verified one; per ATLAS tactic where the
    techniques name ATLAS IDs. JSON-ready."""
    techniques = _techniques(graph)
    with_control = {t for t in techniques if controls_of(graph, t)}
    not_verified = set(uncovered(graph))
    with_verified = {t for t in techniques if t not in not_verified}
    patterns = _live(graph, NodeType.PATTERN)
    anti_patterns = _live(graph, NodeType.ANTI_PATTERN)
    by_tactic: list[dict[str, Any]] = []
    tactic_of = {t: atlas_tactics_of(graph, t) for t in techniques}
    for tactic in frameworks.entries(frameworks.ATLAS, "tactic"):
        members = [t for t in techniques if tactic.id in tactic_of[t]]
        if not members:
            continue
        by_tactic.append(
            {
                "tactic": tactic.id,
                "name": tactic.name,
                "url": tactic.url,
                "techniques": len(members),
                "with_control": sum(t in with_control for t in members),
                "with_verified_control": sum(t in with_verified for t in members),
            }
        )
    return {
        "techniques": len(techniques),
        "with_control": len(with_control),
        "with_verified_control": len(with_verified),
        "verified_ratio": round(len(with_verified) / len(techniques), 4) if techniques else None,
        "patterns": len(patterns),
        "anti_patterns": len(anti_patterns),
        "verified_controls": sum(_verified(graph, c) for c in patterns + anti_patterns),
        "idle_patterns": len(idle_controls(graph)),
        "techniques_without_atlas_tactic": sum(not tactic_of[t] for t in techniques),
        "by_tactic": by_tactic,
        "frameworks": dict(graph.graph.get("frameworks") or frameworks.versions()),
    }


@dataclass(frozen=True, slots=True)
class Cell:
    edge: str  # 'mitigates' or 'enables'
    use: str | None
    verified: bool  # the control's evidence is verified

    def as_dict(self) -> dict[str, Any]:
        return {"edge": self.edge, "use": self.use, "verified": self.verified}


def matrix(graph: nx.MultiDiGraph) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """(techniques, controls, cells): rows are techniques (by chapter, then title), columns the
    patterns then anti-patterns that touch a technique (by title), `cells[(technique, control)]`
    for each `mitigates` / `enables` edge."""
    techniques = _techniques(graph)
    wanted = {EdgeType.MITIGATES, EdgeType.ENABLES}
    cells: dict[tuple[str, str], Cell] = {}
    for technique in techniques:
        for source, _t, key, attrs in graph.in_edges(technique, keys=True, data=True):
            if key in wanted and not graph.nodes[source].get("deprecated"):
                cells[(technique, source)] = Cell(str(key), attrs.get("use"), _verified(graph, source))
    controls = sorted(
        {c for _t, c in cells},
        key=lambda c: (graph.nodes[c].get("type") != NodeType.PATTERN, str(graph.nodes[c].get("title", c)).lower(), c),
    )

    def row_key(t: str) -> tuple[int, str, str]:
        chapter = graph.nodes[t].get("chapter")
        return (chapter if isinstance(chapter, int) else 99, str(graph.nodes[t].get("title", t)).lower(), t)

    return sorted(techniques, key=row_key), controls, cells


def matrix_as_dict(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """The matrix in a JSON-ready shape: row and column ids with titles, and the filled cells."""
    techniques, controls, cells = matrix(graph)

    def head(node: str) -> dict[str, Any]:
        attrs = graph.nodes[node]
        return {"id": node, "title": attrs.get("title"), "type": attrs.get("type"), "verified": bool(attrs.get("verified"))}

    return {
        "techniques": [head(t) for t in techniques],
        "controls": [head(c) for c in controls],
        "cells": [{"technique": t, "control": c, **cell.as_dict()} for (t, c), cell in sorted(cells.items())],
    }
