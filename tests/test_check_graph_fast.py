"""check's graph rules read declarations, not a networkx graph: they must report exactly the
edges `fmbuild.graph.build` makes. Compared on a generated vault with deprecated notes, links of
every form, duplicate names and tables."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from fmbuild.check import run_checks
from fmbuild.graph.build import build_graph
from fmbuild.graph.model import EdgeType, NodeType, is_note_node
from fmbuild.graph.queries import controls_of
from fmbuild.vault.load import load_project
from fmbuild.vault.resolve import Resolver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gen_vault import generate_vault


def _project(tmp_path: Path) -> Path:
    vault = generate_vault(tmp_path / "p", 240, seed=3, lifecycle=True)
    notes = sorted(vault.rglob("*.md"))
    for i, path in enumerate(notes[::9]):  # some notes of every type are deprecated
        text = path.read_text(encoding="utf-8")
        extra = 'successor: "[[techniques/x]]"' if i % 2 else "deprecated_reason: superseded"
        text = re.sub(r"^maturity: \w+$", f"maturity: deprecated\n{extra}", text, count=1, flags=re.MULTILINE)
        path.write_text(text, encoding="utf-8")
    playbook = next(p for p in notes if p.parent.name == "playbooks")
    technique = next(p for p in notes if p.parent.name == "techniques").stem
    pattern = next(p for p in notes if p.parent.name == "patterns").stem
    with playbook.open("a", encoding="utf-8") as fh:
        fh.write(f"\n| What | Why |\n|---|---|\n| [[{technique}]] | covers |\n| [[{pattern}]] | applies |\n")
    return tmp_path / "p"


def test_graph_rules_match_the_graph(tmp_path: Path) -> None:
    config, vault = load_project(_project(tmp_path), use_cache=False)
    found = run_checks(vault, config)
    graph = build_graph(vault, config, Resolver(vault))

    expected_deprecated = set()
    for source, target, key, attrs in graph.edges(keys=True, data=True):
        s, t = graph.nodes[source], graph.nodes[target]
        if source != target and is_note_node(s) and is_note_node(t) and not s.get("deprecated") and t.get("deprecated"):
            expected_deprecated.add((source, int(attrs.get("line") or 1), int(attrs.get("column") or 1), key, target))
    got_deprecated = {
        (d.path, d.line, d.column, *re.match(r"(\S+) edge to deprecated note (\S+):", d.message).groups())
        for d in found if d.code == "edge-deprecated"
    }
    assert expected_deprecated and got_deprecated == expected_deprecated
    assert any(key == "links-to" for *_rest, key, _t in expected_deprecated)

    uncovered = {
        n for n, a in graph.nodes(data=True)
        if a.get("type") == NodeType.TECHNIQUE and not a.get("deprecated") and not controls_of(graph, n)
    }
    idle = {
        n for n, a in graph.nodes(data=True)
        if a.get("type") == NodeType.PATTERN and not a.get("deprecated")
        and not any(k == EdgeType.MITIGATES for _s, _t, k in graph.out_edges(n, keys=True))
    }
    missing = {d.path for d in found if d.code == "control-missing"}
    assert uncovered and missing == uncovered | idle
