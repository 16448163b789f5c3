"""The manual's coverage of MITRE ATLAS, technique by technique: what the site's ATLAS matrix and
the Navigator layer (`navigator.py`) both show.

An ATLAS technique is covered when a live technique note maps to it (`atlas:` in its
frontmatter); its score is 2 when a pattern with verified evidence mitigates one of those notes,
else 1. A parent technique in the matrix takes the best score of itself and its sub-techniques.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from fmbuild import frameworks
from fmbuild.graph.coverage import uncovered
from fmbuild.graph.model import EdgeType, NodeType
from fmbuild.graph.queries import controls_of

VERIFIED, COVERED, NONE = 2, 1, 0


@dataclass(frozen=True, slots=True)
class Covered:
    atlas_id: str
    score: int  # VERIFIED or COVERED
    notes: tuple[str, ...]  # the technique notes that map to it
    verified_controls: tuple[str, ...]  # patterns with verified evidence that mitigate those notes


def covered(graph: nx.MultiDiGraph) -> dict[str, Covered]:
    """Every ATLAS technique (or sub-technique) a live technique note maps to."""
    not_verified = set(uncovered(graph))
    found: dict[str, Covered] = {}
    for node, attrs in sorted(graph.nodes(data=True)):
        if attrs.get("type") != NodeType.FRAMEWORK or attrs.get("framework") != frameworks.ATLAS \
                or attrs.get("kind") != "technique":
            continue
        notes = tuple(sorted(
            source for source, _t, key in graph.in_edges(node, keys=True)
            if key == EdgeType.MAPS_TO and graph.nodes[source].get("type") == NodeType.TECHNIQUE
            and not graph.nodes[source].get("deprecated")
        ))
        if not notes:
            continue
        controls = tuple(sorted({c for n in notes for c, _ in controls_of(graph, n) if graph.nodes[c].get("verified")}))
        score = VERIFIED if any(n not in not_verified for n in notes) else COVERED
        found[node] = Covered(node, score, notes, controls)
    return found


@dataclass
class MatrixCell:
    technique: frameworks.Entry
    score: int  # NONE when the manual does not cover it or any of its sub-techniques
    notes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # the covered IDs (itself and/or sub-techniques)


@dataclass
class MatrixColumn:
    tactic: frameworks.Entry
    cells: list[MatrixCell]

    @property
    def covered(self) -> int:
        return sum(1 for c in self.cells if c.score)


def matrix(graph: nx.MultiDiGraph) -> list[MatrixColumn]:
    """ATLAS tactics in ATLAS's order, each with its (parent) techniques in ATLAS's order."""
    cover = covered(graph)
    columns = []
    techniques = [e for e in frameworks.entries(frameworks.ATLAS, "technique") if e.parent is None]
    subs: dict[str, list[str]] = {}
    for entry in frameworks.entries(frameworks.ATLAS, "technique"):
        if entry.parent:
            subs.setdefault(entry.parent, []).append(entry.id)
    for tactic in frameworks.entries(frameworks.ATLAS, "tactic"):
        cells = []
        for technique in techniques:
            if tactic.id not in technique.tactics:
                continue
            hits = [cover[i] for i in (technique.id, *subs.get(technique.id, ())) if i in cover]
            cells.append(MatrixCell(
                technique, max((h.score for h in hits), default=NONE),
                sorted({n for h in hits for n in h.notes}), [h.atlas_id for h in hits],
            ))
        columns.append(MatrixColumn(tactic, cells))
    return columns
