"""`fmbuild graph` on the command line: formats, --output, coverage questions, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import networkx as nx
import pytest
from click.testing import CliRunner, Result

from fmbuild.cli import cli
from fmbuild.graph.schema import GRAPH_SCHEMA

FIXTURE = Path(__file__).parent / "vaults" / "graph-basic"


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["graph", "--no-cache", *args], catch_exceptions=False)


def test_default_export_is_json_on_stdout(project: Path) -> None:
    result = run()
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    jsonschema.validate(data, GRAPH_SCHEMA)
    assert {"source": "patterns/adversarial-training.md", "target": "techniques/evasion.md"}.items() <= next(
        e for e in data["edges"] if e["type"] == "mitigates" and e["target"] == "techniques/evasion.md"
    ).items()


@pytest.mark.parametrize("fmt", ["graphml", "dot", "mermaid"])
def test_other_formats(project: Path, fmt: str) -> None:
    result = run("--format", fmt)
    assert result.exit_code == 0
    head = {"graphml": "<?xml", "dot": 'digraph "field_manual" {', "mermaid": "```mermaid\nflowchart LR"}[fmt]
    assert result.stdout.startswith(head)


def test_output_file_is_written_and_never_silently_replaced(project: Path) -> None:
    target = project / "graph.graphml"
    result = run("--format", "graphml", "--output", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert nx.read_graphml(target, force_multigraph=True).number_of_nodes() > 0
    target.write_text("mine")
    result = run("--format", "graphml", "--output", str(target))
    assert result.exit_code == 2
    assert "exists; pass --force" in result.stderr
    assert target.read_text() == "mine"
    assert run("--format", "graphml", "--output", str(target), "--force").exit_code == 0
    assert target.read_text().startswith("<?xml")
    assert [p.name for p in project.iterdir() if p.name.startswith(".graph")] == []  # no temp file left


def test_unwritable_output_is_a_clean_usage_error(project: Path) -> None:
    result = run("--output", str(project / "no-such-folder" / "g.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith("fmbuild: error: cannot write")


def test_coverage_questions_in_text(project: Path) -> None:
    result = run("--uncovered", "--unverified-controls", "--orphans", "--coverage", "--matrix")
    assert result.exit_code == 0
    out = result.stdout
    assert "Techniques with no verified control: 3 of 3" in out
    assert "techniques/extraction.md  Model extraction  <- no control at all" in out
    assert "Controls whose evidence is not verified: 5" in out
    assert "Notes nothing links to: 4" in out
    assert "Techniques: 3; with a control: 2; with a verified control: 0 (0%)" in out
    assert "Controls: 4 patterns, 1 anti-pattern; verified: 0; patterns mitigating nothing: 2" in out
    assert "AML.TA0010  Exfiltration" in out
    assert "Technique x control matrix: 3 techniques, 3 controls" in out


def test_coverage_questions_in_json(project: Path) -> None:
    result = run("--uncovered", "--coverage", "--matrix", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [row["id"] for row in data["uncovered"]] == [
        "techniques/evasion.md", "techniques/extraction.md", "techniques/poisoning.md"
    ]
    assert data["uncovered"][0]["controls"] == [
        {"id": "patterns/adversarial-training.md", "verified": False, "evidence": "none"}
    ]
    assert data["coverage"]["with_control"] == 2
    assert len(data["matrix"]["cells"]) == 3


def test_fail_on_findings(project: Path) -> None:
    assert run("--orphans").exit_code == 0
    result = run("--orphans", "--fail-on-findings")
    assert result.exit_code == 1
    assert "Notes nothing links to: 4" in result.stdout


def test_fail_on_findings_passes_when_nothing_is_found(project: Path) -> None:
    for path in ("patterns/idle.md", "patterns/wrong-target.md", "patterns/open-inference-api.md", "playbooks/hardening.md"):
        (project / "vault" / path).unlink()
    bibliography = project / "vault" / "sources" / "bibliography.md"
    bibliography.write_text(bibliography.read_text() + "\nSee also [[patterns/data-sanitization]].\n")
    result = run("--orphans", "--fail-on-findings")
    assert result.exit_code == 0, result.stdout
    assert "Notes nothing links to: 0" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--uncovered", "--format", "dot"), "--uncovered answers in text or json"),
        (("--format", "text"), "--format text is for coverage questions"),
        (("--fail-on-findings",), "--fail-on-findings needs"),
        (("--coverage", "--fail-on-findings"), "--fail-on-findings needs"),
        (("--format", "svg"), "Invalid value for '--format'"),
    ],
)
def test_usage_errors_exit_2(project: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_no_project_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run()
    assert result.exit_code == 2
    assert result.stderr.startswith("fmbuild: error: no fmbuild.toml")


def test_bad_config_is_a_clean_error(project: Path) -> None:
    (project / "fmbuild.toml").write_text("[vault]\npath = 3\n")
    result = run()
    assert result.exit_code == 2
    assert "[vault].path" in result.stderr


def test_any_obsidian_vault_with_vault_option(project: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "notes").mkdir(parents=True)
    (plain / "notes" / "a.md").write_text("# A\n[[b]]\n")
    (plain / "notes" / "b.md").write_text("# B\n")
    result = run("--vault", str(plain), "--orphans")
    assert result.exit_code == 0
    assert "notes/a.md  A [note]" in result.stdout


def test_focus_and_edge_type_shape_the_export(project: Path) -> None:
    result = run("--format", "json", "--focus", "techniques/evasion", "--edge-type", "mitigates", "--edge-type", "covers")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {(e["source"], e["target"], e["type"]) for e in data["edges"]} == {
        ("patterns/adversarial-training.md", "techniques/evasion.md", "mitigates"),
        ("playbooks/hardening.md", "techniques/evasion.md", "covers"),
        ("playbooks/hardening.md", "techniques/poisoning.md", "covers"),  # poisoning links to evasion
    }
    by_file = run("--format", "json", "--focus", str(project / "vault" / "techniques" / "evasion.md"), "--depth", "0")
    assert [n["id"] for n in json.loads(by_file.stdout)["nodes"]] == ["techniques/evasion.md"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--focus", "techniques/nope"), "--focus techniques/nope: no such note"),
        (("--focus", "AML.T0015"), "no such note"),  # a framework entry is not a note
        (("--orphans", "--edge-type", "mitigates"), "--edge-type and --focus shape an export"),
        (("--depth", "11", "--focus", "techniques/evasion"), "Invalid value for '--depth'"),
    ],
)
def test_focus_usage_errors(project: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
