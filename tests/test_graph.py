"""The technique-to-control graph: building, queries, coverage answers, and every export format
parsed back by an independent reader (jsonschema, networkx's GraphML reader, pydot)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import networkx as nx
import pydot
import pytest

from fmbuild.evidence.contract import read_module
from fmbuild.evidence.records import Record, inputs_hash, write_record
from fmbuild.graph import coverage, export, queries
from fmbuild.graph.build import GraphBuilder, build_graph
from fmbuild.graph.schema import GRAPH_SCHEMA
from fmbuild.vault.load import load_project, load_vault
from fmbuild.vault.parse import parse_note
from fmbuild.vault.resolve import Resolver

FIXTURE = Path(__file__).parent / "vaults" / "graph-basic"

EVASION = "techniques/evasion.md"
POISONING = "techniques/poisoning.md"
EXTRACTION = "techniques/extraction.md"
LEGACY = "techniques/legacy.md"
ADV_TRAINING = "patterns/adversarial-training.md"
SANITIZATION = "patterns/data-sanitization.md"
IDLE = "patterns/idle.md"
WRONG = "patterns/wrong-target.md"
OPEN_API = "patterns/open-inference-api.md"
PLAYBOOK = "playbooks/hardening.md"
BIBLIOGRAPHY = "sources/bibliography.md"
MODULE = "module:evidence/demo"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A private copy of the fixture project (records are written into it; no parse cache)."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root


def build(root: Path) -> tuple[GraphBuilder, nx.MultiDiGraph]:
    config, vault = load_project(root, use_cache=False)
    builder = GraphBuilder(vault, config)
    return builder, builder.build()


def write_passing_record(root: Path, accuracy: float = 0.95) -> None:
    module_dir = root / "evidence" / "demo"
    record = Record(
        module="evidence/demo", status="passed", inputs_hash=inputs_hash(module_dir, read_module(module_dir)),
        metrics={"accuracy": accuracy}, claims=[], duration_s=1.0, device="cpu", isolation="subprocess",
        environment={}, seed=0, scale="full", date="2026-01-01T00:00:00Z", fmbuild="test", log_tail="", artifacts=[],
    )
    out = root / "out"
    out.mkdir(exist_ok=True)
    write_record(module_dir, record, out, "demo\n")


def edges_of(graph: nx.MultiDiGraph, edge_type: str) -> set[tuple[str, str]]:
    return {(s, t) for s, t, k in graph.edges(keys=True) if k == edge_type}


# --- building -----------------------------------------------------------------------------------


def test_nodes_of_every_kind_with_their_attributes(project: Path) -> None:
    _builder, graph = build(project)
    node = graph.nodes[EVASION]
    assert node["type"] == "technique"
    assert node["title"] == "Evasion with adversarial examples"
    assert (node["path"], node["maturity"], node["chapter"], node["note_id"]) == (EVASION, "reviewed", 4, "T-001")
    assert node["tags"] == ["type/technique"]
    assert graph.nodes[OPEN_API]["type"] == "anti-pattern"
    assert graph.nodes[PLAYBOOK]["type"] == "playbook"
    assert graph.nodes[BIBLIOGRAPHY]["type"] == "source"
    assert graph.nodes[LEGACY]["deprecated"] is True
    module = graph.nodes[MODULE]
    assert (module["type"], module["path"], module["title"], module["exists"]) == ("module", "evidence/demo", "demo", True)
    entry = graph.nodes["AML.T0043.000"]
    assert (entry["type"], entry["framework"], entry["kind"], entry["parent"]) == ("framework", "atlas", "technique", "AML.T0043")
    assert entry["url"] == "https://atlas.mitre.org/techniques/AML.T0043.000"
    assert entry["tactics"] == ["AML.TA0001"]
    assert graph.nodes["LLM04"]["framework"] == "owasp-llm"  # written 'LLM04:2025' in the note
    assert "AML.T9999" not in graph  # unknown IDs make no node (check reports them)
    assert graph.graph["frameworks"] == {"atlas": "5.6.0", "owasp-llm": "2025", "owasp-llm-2026": "2026", "owasp-ml": "2023"}


def test_every_edge_type_from_the_fixture(project: Path) -> None:
    _builder, graph = build(project)
    assert edges_of(graph, "mitigates") == {(ADV_TRAINING, EVASION), (SANITIZATION, POISONING), (SANITIZATION, LEGACY)}
    assert edges_of(graph, "enables") == {(OPEN_API, EXTRACTION)}
    # covers/applies from frontmatter and from the playbook's table (not from the code block)
    assert edges_of(graph, "covers") == {(PLAYBOOK, POISONING), (PLAYBOOK, EVASION), (PLAYBOOK, EXTRACTION)}
    assert edges_of(graph, "applies") == {(PLAYBOOK, SANITIZATION), (PLAYBOOK, ADV_TRAINING)}
    assert edges_of(graph, "evidenced-by") == {(EVASION, MODULE), (ADV_TRAINING, MODULE)}
    assert edges_of(graph, "maps-to") == {
        (EVASION, "AML.T0015"), (EVASION, "AML.T0043.000"), (EVASION, "ML01"),
        (POISONING, "AML.T0020"), (POISONING, "LLM04"),
        (EXTRACTION, "AML.T0024.002"), (EXTRACTION, "ML05"),
        (LEGACY, "AML.T0005"), (ADV_TRAINING, "AML.M0003"),
    }
    assert edges_of(graph, "links-to") == {
        (EVASION, BIBLIOGRAPHY), (EVASION, ADV_TRAINING), (POISONING, EVASION), (PLAYBOOK, BIBLIOGRAPHY),
        (LEGACY, EXTRACTION),  # the `successor` property link
        (WRONG, SANITIZATION),  # an invalid `mitigates` item is still a link
    }


def test_edge_attributes_carry_use_line_and_origin(project: Path) -> None:
    _builder, graph = build(project)
    mitigates = graph.edges[ADV_TRAINING, EVASION, "mitigates"]
    assert mitigates["use"] == "Training on FGSM examples restores accuracy under attack."
    assert (mitigates["line"], mitigates["origin"]) == (10, "frontmatter")
    table = graph.edges[PLAYBOOK, EXTRACTION, "covers"]
    assert (table["origin"], table["line"]) == ("table", 21)
    links = graph.edges[EVASION, BIBLIOGRAPHY, "links-to"]
    assert links["count"] == 2  # two links, one edge
    assert graph.edges[LEGACY, EXTRACTION, "links-to"]["field"] == "successor"
    assert graph.edges[EVASION, "ML01", "maps-to"]["field"] == "owasp_ml"


def test_invalid_declarations_are_kept_for_check(project: Path) -> None:
    builder, _graph = build(project)
    problems = [(c.declaration.source, c.problem) for c in builder.checked if c.problem]
    assert len(problems) == 1
    source, problem = problems[0]
    assert source == WRONG
    assert "must point at a technique" in problem and "is a pattern" in problem


def test_build_graph_accepts_a_resolver_and_a_plain_vault(project: Path) -> None:
    vault = load_vault(project / "vault", None, use_cache=False)
    graph = build_graph(vault, None, resolver=Resolver(vault))
    assert (ADV_TRAINING, EVASION) in edges_of(graph, "mitigates")
    # without fmbuild.toml there are no records: `maturity: verified` is the basis
    assert graph.nodes[ADV_TRAINING]["verified"] is True
    assert graph.nodes[ADV_TRAINING]["verified_basis"] == "maturity"
    assert graph.nodes[MODULE]["exists"] is None


def test_table_rows_skip_header_code_and_frontmatter() -> None:
    text = (
        "---\ntitle: |\n  a | b\n---\n"  # lines 1-4
        "| A | B |\n|---|---|\n| [[x]] | y |\n| z | [[w]] |\n\n"  # 5-9: body rows 7, 8
        "```\n| [[c]] | d |\n|---|---|\n| e | f |\n```\n"  # 10-14: code
        "text | with pipe\n"  # 15: not a table
    )
    # the graph reads table rows from the vault model (the parser finds them)
    assert parse_note("playbooks/p.md", text).table_rows == [7, 8]


# --- queries and coverage -------------------------------------------------------------------------


def test_reverse_direction_is_derived(project: Path) -> None:
    _builder, graph = build(project)
    assert [c for c, _ in queries.controls_of(graph, EVASION)] == [ADV_TRAINING]
    assert queries.controls_of(graph, EVASION)[0][1]["use"].startswith("Training on FGSM")
    assert queries.controls_of(graph, LEGACY) == [(SANITIZATION, graph.edges[SANITIZATION, LEGACY, "mitigates"])]
    assert [a for a, _ in queries.enablers_of(graph, EXTRACTION)] == [OPEN_API]
    assert [t for t, _ in queries.techniques_of(graph, SANITIZATION)] == [LEGACY, POISONING]
    assert queries.playbooks_of(graph, EVASION) == [PLAYBOOK]
    assert queries.backlinks(graph, EVASION) == [ADV_TRAINING, PLAYBOOK, POISONING]
    kinds = {(n.edge, n.outgoing) for n in queries.neighbours(graph, EVASION)}
    assert ("mitigates", False) in kinds and ("maps-to", True) in kinds and ("evidenced-by", True) in kinds


def test_coverage_without_records(project: Path) -> None:
    _builder, graph = build(project)
    # deprecated techniques take no part; no control has a record yet
    assert coverage.uncovered(graph) == [EVASION, EXTRACTION, POISONING]
    assert coverage.uncontrolled(graph) == [EXTRACTION]
    assert coverage.unverified_controls(graph) == [ADV_TRAINING, SANITIZATION, IDLE, OPEN_API, WRONG]
    assert coverage.idle_controls(graph) == [IDLE, WRONG]
    assert coverage.orphans(graph) == [IDLE, OPEN_API, WRONG, PLAYBOOK]
    assert graph.nodes[ADV_TRAINING]["evidence_status"] == "none"  # `maturity: verified` is not enough


def test_coverage_with_a_passing_fresh_record(project: Path) -> None:
    write_passing_record(project)
    _builder, graph = build(project)
    assert graph.nodes[ADV_TRAINING]["verified"] is True
    assert graph.nodes[ADV_TRAINING]["evidence_status"] == "passing"
    assert coverage.uncovered(graph) == [EXTRACTION, POISONING]
    assert coverage.unverified_controls(graph) == [SANITIZATION, IDLE, OPEN_API, WRONG]
    summary = coverage.coverage_summary(graph)
    assert {k: summary[k] for k in ("techniques", "with_control", "with_verified_control", "verified_ratio")} == {
        "techniques": 3, "with_control": 2, "with_verified_control": 1, "verified_ratio": round(1 / 3, 4)
    }
    assert (summary["patterns"], summary["anti_patterns"], summary["verified_controls"], summary["idle_patterns"]) == (4, 1, 1, 2)
    by_tactic = {t["tactic"]: (t["techniques"], t["with_control"], t["with_verified_control"]) for t in summary["by_tactic"]}
    # evasion: AML.T0015 (TA0004, TA0007, TA0011) + AML.T0043.000 (its parent's TA0001)
    assert by_tactic == {
        "AML.TA0004": (1, 1, 1), "AML.TA0007": (1, 1, 1), "AML.TA0011": (1, 1, 1), "AML.TA0001": (1, 1, 1),
        "AML.TA0003": (1, 1, 0), "AML.TA0006": (1, 1, 0),  # poisoning: AML.T0020
        "AML.TA0010": (1, 0, 0),  # extraction: AML.T0024.002 (its parent's TA0010)
    }
    assert [t["tactic"] for t in summary["by_tactic"]][:2] == ["AML.TA0003", "AML.TA0004"]  # ATLAS order


def test_a_record_whose_claims_fail_does_not_verify(project: Path) -> None:
    write_passing_record(project, accuracy=0.5)  # the note claims accuracy >= 0.9
    _builder, graph = build(project)
    assert graph.nodes[ADV_TRAINING]["verified"] is False
    assert graph.nodes[ADV_TRAINING]["evidence_status"] == "failing"
    assert EVASION in coverage.uncovered(graph)


def test_matrix(project: Path) -> None:
    write_passing_record(project)
    _builder, graph = build(project)
    techniques, controls, cells = coverage.matrix(graph)
    assert techniques == [EVASION, EXTRACTION, POISONING]  # chapter 4, then title
    assert controls == [ADV_TRAINING, SANITIZATION, OPEN_API]  # patterns first, then anti-patterns
    assert cells[(EVASION, ADV_TRAINING)] == coverage.Cell("mitigates", "Training on FGSM examples restores accuracy under attack.", True)
    assert cells[(EXTRACTION, OPEN_API)].edge == "enables"
    assert (POISONING, SANITIZATION) in cells and len(cells) == 3
    as_dict = coverage.matrix_as_dict(graph)
    assert [c["id"] for c in as_dict["controls"]] == controls
    json.dumps(as_dict)


def test_empty_vault(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    vault = load_vault(tmp_path / "vault", None, use_cache=False)
    graph = build_graph(vault, None)
    assert graph.number_of_nodes() == 0
    summary = coverage.coverage_summary(graph)
    assert summary["techniques"] == 0 and summary["verified_ratio"] is None and summary["by_tactic"] == []
    assert coverage.matrix(graph) == ([], [], {})
    jsonschema.validate(json.loads(export.to_json(graph)), GRAPH_SCHEMA)


# --- exports, parsed back --------------------------------------------------------------------------


def test_json_export_validates_and_round_trips(project: Path) -> None:
    _builder, graph = build(project)
    data = json.loads(export.to_json(graph))
    jsonschema.validate(data, GRAPH_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert {n["id"] for n in data["nodes"]} == set(graph.nodes)
    assert len(data["edges"]) == graph.number_of_edges()
    again = export.from_dict(data)
    assert set(again.edges(keys=True)) == set(graph.edges(keys=True))
    assert again.edges[ADV_TRAINING, EVASION, "mitigates"]["use"] == graph.edges[ADV_TRAINING, EVASION, "mitigates"]["use"]
    assert export.to_json(graph) == export.to_json(build(project)[1])  # deterministic


def test_json_schema_rejects_an_unknown_edge_type(project: Path) -> None:
    _builder, graph = build(project)
    data = json.loads(export.to_json(graph))
    data["edges"][0]["type"] = "protects"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, GRAPH_SCHEMA)


def test_graphml_export_reads_back_with_networkx(project: Path, tmp_path: Path) -> None:
    _builder, graph = build(project)
    path = tmp_path / "graph.graphml"
    path.write_text(export.to_graphml(graph), encoding="utf-8")
    again = nx.read_graphml(path, force_multigraph=True)
    assert set(again.nodes) == set(graph.nodes)
    assert again.number_of_edges() == graph.number_of_edges()
    assert again.nodes[EVASION]["label"] == "Evasion with adversarial examples"
    assert again.nodes[EVASION]["tags"] == "type/technique"
    assert again.nodes["AML.T0015"]["tactics"] == "AML.TA0004; AML.TA0007; AML.TA0011"
    types = {(s, t, d["type"]) for s, t, d in again.edges(data=True)}
    assert (ADV_TRAINING, EVASION, "mitigates") in types and (PLAYBOOK, EXTRACTION, "covers") in types


def test_dot_export_parses_with_pydot(project: Path) -> None:
    _builder, graph = build(project)
    (dot,) = pydot.graph_from_dot_data(export.to_dot(graph))
    names = {n.get_name().strip('"') for n in dot.get_nodes()} - {"node", "graph", "edge"}
    assert names == set(graph.nodes)
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"'), e.get("label").strip('"')) for e in dot.get_edges()}
    assert len(edges) == graph.number_of_edges()
    assert (ADV_TRAINING, EVASION, "mitigates") in edges


def test_dot_quotes_hostile_ids_and_titles() -> None:
    graph = nx.MultiDiGraph(frameworks={})
    hostile = 'techniques/a "b" \\ c; }.md'
    graph.add_node(hostile, type="technique", title='Evil "quoted" \\ title; }\nline', tags=["x", "y"])
    graph.add_node("patterns/p.md", type="pattern", title="P")
    graph.add_edge("patterns/p.md", hostile, key="mitigates", type="mitigates", use='say "no"')
    (dot,) = pydot.graph_from_dot_data(export.to_dot(graph))
    nodes = {n.get_name() for n in dot.get_nodes()} - {"node", "graph", "edge"}
    assert len(nodes) == 2
    (edge,) = dot.get_edges()
    assert edge.get("fm_use") == '"say \\"no\\""'


def test_mermaid_export(project: Path) -> None:
    _builder, graph = build(project)
    text = export.to_mermaid(graph, fenced=True)
    assert text.startswith("```mermaid\nflowchart LR\n") and text.endswith("```\n")
    body = export.to_mermaid(graph)
    node_lines = [line for line in body.splitlines() if re.match(r"  n\d+[\[({>]", line)]
    assert len(node_lines) == graph.number_of_nodes()
    arrows = [line for line in body.splitlines() if "|" in line and ("-->" in line or "==>" in line or "-.->" in line)]
    assert len(arrows) == graph.number_of_edges()
    assert any("==>|mitigates|" in line for line in arrows)
    only = export.to_mermaid(graph, edge_types=["mitigates", "enables"])
    assert "maps-to" not in only and "Bibliography" not in only
    assert only.count("==>|mitigates|") == 3


def test_mermaid_escapes_quotes(project: Path) -> None:
    note = project / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text().replace("title: Evasion with adversarial examples", "title: 'Say \"hi\" <b>'"))
    _builder, graph = build(project)
    assert 'Say #quot;hi#quot; #lt;b#gt;' in export.to_mermaid(graph)


def test_export_rejects_unknown_format(project: Path) -> None:
    _builder, graph = build(project)
    with pytest.raises(ValueError, match="unknown graph format"):
        export.export(graph, "svg")


def test_views(project: Path) -> None:
    from fmbuild.graph.views import neighbourhood, with_edge_types

    _builder, graph = build(project)
    only = with_edge_types(graph, ["enables"])
    assert set(only.edges(keys=True)) == {(OPEN_API, EXTRACTION, "enables")}
    assert set(only.nodes) == {OPEN_API, EXTRACTION}
    assert only.graph["frameworks"] == graph.graph["frameworks"]
    near = neighbourhood(graph, EXTRACTION, depth=1)
    assert set(near.nodes) == {EXTRACTION, OPEN_API, PLAYBOOK, LEGACY, "AML.T0024.002", "ML05"}
    assert (LEGACY, EXTRACTION, "links-to") in set(near.edges(keys=True))
    assert set(neighbourhood(graph, EXTRACTION, depth=0).nodes) == {EXTRACTION}
    with pytest.raises(KeyError):
        neighbourhood(graph, "nope.md")
    with pytest.raises(ValueError):
        with_edge_types(graph, ["protects"])
