"""`fmbuild check`'s graph consistency rules: edge-invalid, edge-deprecated, control-missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fmbuild.check import run_checks
from fmbuild.diagnostics import Diagnostic
from fmbuild.vault.load import load_project

FIXTURE = Path(__file__).parent / "vaults" / "graph-basic"
GRAPH_CODES = {"edge-invalid", "edge-deprecated", "control-missing"}

NOTE_HEAD = "---\ntitle: {title}\nid: {id}\ntags: [type/{type}]\nmaturity: draft\ncreated: 2026-01-01\nupdated: 2026-01-01\nchapter: 5\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root


def graph_diagnostics(root: Path, selected: set[str] | None = None) -> list[Diagnostic]:
    config, vault = load_project(root, use_cache=False)
    return sorted(
        (d for d in run_checks(vault, config, selected=selected) if d.code in GRAPH_CODES), key=Diagnostic.sort_key
    )


def write_note(root: Path, path: str, note_type: str, fields: str = "", body: str = "") -> None:
    text = NOTE_HEAD.format(title=Path(path).stem, id=Path(path).stem, type=note_type) + fields + "---\n" + body
    (root / "vault" / path).write_text(text, encoding="utf-8")


def test_fixture_diagnostics(project: Path) -> None:
    found = [d.text() for d in graph_diagnostics(project)]
    assert found == [
        ("patterns/data-sanitization.md:12:17: warning[edge-deprecated] mitigates edge to deprecated note "
        "techniques/legacy.md: point it at the successor [[techniques/extraction]] instead"),
        ("patterns/wrong-target.md:10:17: error[edge-invalid] 'mitigates' must point at a technique note, but "
        "[[patterns/data-sanitization]] is a pattern (patterns/data-sanitization.md)"),
        ("techniques/extraction.md:1:1: warning[control-missing] no pattern mitigates this technique: add it to a "
        "pattern's 'mitigates' (- technique: \"[[techniques/extraction]]\", use: why it helps), or write that pattern"),
    ]


def test_an_empty_required_mitigates_is_left_to_field_missing(project: Path) -> None:
    config, vault = load_project(project, use_cache=False)
    codes = {(d.path, d.code) for d in run_checks(vault, config)}
    assert ("patterns/idle.md", "field-missing") in codes
    assert ("patterns/idle.md", "control-missing") not in codes


def test_a_pattern_that_mitigates_nothing_warns_when_the_field_is_optional(project: Path) -> None:
    toml = project / "fmbuild.toml"
    toml.write_text(toml.read_text().replace('required = ["mitigates"]', "required = []"))
    found = [d for d in graph_diagnostics(project) if d.path == "patterns/idle.md"]
    assert [(d.line, d.severity, d.code) for d in found] == [(9, "warning", "control-missing")]
    assert "mitigates nothing" in found[0].message


def test_declarations_by_the_wrong_type_of_note(project: Path) -> None:
    write_note(project, "techniques/self-mitigating.md", "technique",
               'atlas: [AML.T0015]\nmitigates:\n  - technique: "[[techniques/evasion]]"\n    use: x\n')
    found = [d for d in graph_diagnostics(project) if d.path == "techniques/self-mitigating.md"]
    invalid = [d for d in found if d.code == "edge-invalid"]
    assert len(invalid) == 1
    assert invalid[0].line == 11 and invalid[0].column == 17
    assert "'mitigates' is declared by a pattern note, but this note is a technique (type/technique)" in invalid[0].message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('mitigates:\n  - use: no link here\n', "mitigates[0] has no 'technique' link"),
        ("mitigates:\n  - 42\n", "mitigates[0] is a int"),
        ("mitigates:\n  -\n", "mitigates[0] is empty"),
        ('mitigates:\n  - technique: techniques/nowhere\n', "'techniques/nowhere' names no note"),
    ],
)
def test_malformed_items_are_edge_invalid(project: Path, fields: str, message: str) -> None:
    write_note(project, "patterns/malformed.md", "pattern", fields)
    found = [d for d in graph_diagnostics(project) if d.path == "patterns/malformed.md"]
    assert [d.code for d in found] == ["edge-invalid"]
    assert message in found[0].message
    assert found[0].line == 9


def test_a_bare_path_that_resolves_is_accepted(project: Path) -> None:
    write_note(project, "patterns/bare.md", "pattern", "mitigates:\n  - technique: techniques/extraction\n    use: x\n")
    assert not [d for d in graph_diagnostics(project) if d.path in ("patterns/bare.md", "techniques/extraction.md")]


def test_playbook_edges_of_the_wrong_type(project: Path) -> None:
    write_note(project, "playbooks/mixed.md", "playbook",
               'covers: ["[[patterns/data-sanitization]]"]\napplies: ["[[patterns/open-inference-api]]"]\n',
               "| Technique |\n|---|\n| [[patterns/open-inference-api]] |\n")
    found = [d for d in graph_diagnostics(project) if d.path == "playbooks/mixed.md"]
    assert [(d.line, d.code) for d in found] == [(9, "edge-invalid"), (10, "edge-invalid")]
    assert "'covers' must point at a technique note" in found[0].message
    assert "'applies' must point at a pattern note, but [[patterns/open-inference-api]] is an anti-pattern" in found[1].message


def test_any_edge_to_a_deprecated_note_warns_but_not_from_one(project: Path) -> None:
    write_note(project, "playbooks/old.md", "playbook", 'covers: ["[[techniques/legacy]]"]\n',
               "See [[techniques/legacy]] and [[patterns/data-sanitization]].\n")
    found = [(d.path, d.line, d.code) for d in graph_diagnostics(project) if d.code == "edge-deprecated"]
    assert ("playbooks/old.md", 9, "edge-deprecated") in found
    assert not [f for f in found if f[0] == "techniques/legacy.md"]  # a deprecated note links freely
    # the `covers` edge subsumes the prose link to the same note: one warning, not two
    assert len([f for f in found if f[0] == "playbooks/old.md"]) == 1


def test_deprecated_note_with_a_reason_and_no_successor(project: Path) -> None:
    legacy = project / "vault" / "techniques" / "legacy.md"
    legacy.write_text(legacy.read_text().replace('successor: "[[techniques/extraction]]"', "deprecated_reason: merged away"))
    (d,) = [d for d in graph_diagnostics(project) if d.code == "edge-deprecated"]
    assert "it was retired (merged away)" in d.message


def test_covers_and_applies_cycles_are_not_reported(project: Path) -> None:
    write_note(project, "playbooks/a.md", "playbook", 'covers: ["[[techniques/evasion]]"]\n', "[[playbooks/b]]\n")
    write_note(project, "playbooks/b.md", "playbook", 'applies: ["[[patterns/adversarial-training]]"]\n', "[[playbooks/a]]\n")
    assert not [d for d in graph_diagnostics(project) if d.path.startswith("playbooks/")]


def test_broken_links_in_declarations_are_left_to_the_link_rules(project: Path) -> None:
    write_note(project, "patterns/broken.md", "pattern", 'mitigates:\n  - technique: "[[techniques/nowhere]]"\n    use: x\n')
    config, vault = load_project(project, use_cache=False)
    codes = [d.code for d in run_checks(vault, config) if d.path == "patterns/broken.md"]
    assert "link-broken" in codes and "edge-invalid" not in codes


def test_selected_paths_limit_the_report(project: Path) -> None:
    found = graph_diagnostics(project, selected={"patterns/wrong-target.md"})
    assert [(d.path, d.code) for d in found] == [("patterns/wrong-target.md", "edge-invalid")]


def test_rules_skip_a_plain_obsidian_vault(project: Path) -> None:
    (project / "fmbuild.toml").unlink()
    config, vault = load_project(project, vault=project / "vault", use_cache=False)
    assert config is None
    assert not [d for d in run_checks(vault, config) if d.code in GRAPH_CODES]
