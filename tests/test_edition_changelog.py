"""Changelogs between two Editions with known differences, `edition diff`, and the site's view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_edition_support import commit_all, fmbuild, git, replace_in

pytest_plugins = ["test_edition_support"]

ANTI_PATTERN = """---
title: Blind threshold
id: ed-anti-001
tags: [type/anti-pattern]
maturity: draft
created: 2026-06-01
updated: 2026-06-01
chapter: 6
owasp_ml: [ML01]
enables:
  - technique: "[[techniques/threshold-evasion]]"
    use: A threshold nobody watches is a line to stay under.
evidence:
  module: evidence/ed-count
  claims:
    flagged_rate: ">= 0.05"
---
# Blind threshold

Alerting on the verdict alone.
"""


def second_edition(repo: Path) -> None:
    """The known differences between 2026.1 and 2026.2."""
    vault = repo / "vault"
    (vault / "playbooks" / "triage.md").unlink()  # removed, with its covers/applies edges
    git(repo, "mv", "vault/sources/reading.md", "vault/sources/further-reading.md")  # renamed, same id
    tech = vault / "techniques" / "threshold-evasion.md"
    replace_in(tech, "the playbook is [[playbooks/triage|triage]]", "the playbook is gone")
    replace_in(tech, '    points: "== 1000"\n', "")  # claim dropped
    replace_in(tech, '"<= 0.2"', '"<= 0.15"')  # claim changed
    replace_in(tech, "{{evidence:points}} points", "1000 points")
    replace_in(vault / "patterns" / "score-monitoring.md", "maturity: reviewed", "maturity: draft")
    (vault / "patterns" / "blind-threshold.md").write_text(ANTI_PATTERN, encoding="utf-8")


@pytest.fixture
def two_editions(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    second_edition(repo)
    commit_all(repo, "second", date="2026-09-01T08:30:00Z")
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.2")
    assert result.exit_code == 0, result.output
    assert "against Edition 2026.1" in result.output
    return repo


def test_changelog_names_every_known_difference(two_editions: Path) -> None:
    folder = two_editions / "editions" / "2026.2"
    log = json.loads((folder / "changelog.json").read_text())
    assert log["name"] == "2026.2" and log["previous"] == "2026.1"
    assert log["notes_added"] == [{"path": "patterns/blind-threshold.md", "title": "Blind threshold",
                                   "type": "anti-pattern", "maturity": "draft"}]
    assert log["notes_removed"] == [{"path": "playbooks/triage.md", "title": "Triage of a quiet evasion",
                                     "type": "playbook", "maturity": "draft"}]
    assert log["notes_renamed"] == [{"id": "ed-src-001", "title": "Reading list",
                                     "old_path": "sources/reading.md", "new_path": "sources/further-reading.md"}]
    assert log["notes_changed"] == [
        {"path": "patterns/score-monitoring.md", "title": "Score monitoring", "fields": ["content"]},
        {"path": "techniques/threshold-evasion.md", "title": "Threshold evasion", "fields": ["content"]},
    ]  # the renamed note's bytes did not change, so it is renamed only
    assert log["maturity"] == [{"path": "patterns/score-monitoring.md", "title": "Score monitoring",
                                "old": "reviewed", "new": "draft"}]
    assert log["claims_added"] == [{"path": "patterns/blind-threshold.md", "metric": "flagged_rate", "claim": ">= 0.05"}]
    assert log["claims_dropped"] == [{"path": "techniques/threshold-evasion.md", "metric": "points", "claim": "== 1000"}]
    assert log["claims_changed"] == [{"path": "techniques/threshold-evasion.md", "metric": "flagged_rate",
                                      "old": "<= 0.2", "new": "<= 0.15"}]
    assert log["edges_added"] == [
        {"source": "patterns/blind-threshold.md", "type": "enables", "target": "techniques/threshold-evasion.md"},
        {"source": "patterns/blind-threshold.md", "type": "evidenced-by", "target": "module:evidence/ed-count"},
        {"source": "patterns/blind-threshold.md", "type": "maps-to", "target": "ML01"},
    ]
    assert log["edges_dropped"] == [
        {"source": "playbooks/triage.md", "type": "applies", "target": "patterns/score-monitoring.md"},
        {"source": "playbooks/triage.md", "type": "covers", "target": "techniques/threshold-evasion.md"},
    ]
    assert log["frameworks_covered"] == [{"id": "ML01", "name": "Input Manipulation Attack"}]
    assert log["frameworks_uncovered"] == [] and log["modules_rerecorded"] == []

    md = (folder / "CHANGELOG.md").read_text()
    assert md.startswith("# Changes in Edition 2026.2\n")
    assert "Compared with Edition 2026.1" in md
    assert "| notes renamed | 1 |" in md and "| claims changed | 1 |" in md
    assert "- **Reading list**: `sources/reading.md` → `sources/further-reading.md`" in md
    assert "- **Score monitoring** (`patterns/score-monitoring.md`): reviewed → draft" in md
    assert "- `techniques/threshold-evasion.md`: `flagged_rate` `<= 0.2` → `<= 0.15`" in md
    assert "- `ML01` Input Manipulation Attack" in md


def test_diff_between_two_editions(two_editions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = two_editions / "editions" / "2026.2"
    as_json = fmbuild(monkeypatch, two_editions, "edition", "diff", "2026.1", "2026.2", "--format", "json")
    assert as_json.exit_code == 0 and as_json.stdout == (folder / "changelog.json").read_text()
    as_md = fmbuild(monkeypatch, two_editions, "edition", "diff", "2026.1", "2026.2")
    assert as_md.stdout == (folder / "CHANGELOG.md").read_text()
    backwards = json.loads(fmbuild(monkeypatch, two_editions, "edition", "diff", "2026.2", "2026.1", "--format", "json").stdout)
    assert [n["path"] for n in backwards["notes_added"]] == ["playbooks/triage.md"]
    assert backwards["frameworks_uncovered"] == [{"id": "ML01", "name": "Input Manipulation Attack"}]
    same = fmbuild(monkeypatch, two_editions, "edition", "diff", "2026.1", "2026.1")
    assert "Nothing changed." in same.stdout


def test_list_and_the_site_see_both_editions(two_editions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = json.loads(fmbuild(monkeypatch, two_editions, "edition", "list", "--format", "json").stdout)
    assert [(e["name"], e["date"], e["previous"]) for e in listing] == [
        ("2026.1", "2026-03-01", None), ("2026.2", "2026-09-01", "2026.1")]
    from fmbuild.site.editions import editions_page, find_editions, versions

    found, problems = find_editions(two_editions / "editions")
    assert problems == [] and [e.name for e in found] == ["2026.2", "2026.1"]
    assert [v["version"] for v in versions(found)] == [".", "editions/2026.2", "editions/2026.1"]
    page = editions_page(found).body
    assert "Changes in 2026.2" in page and "Blind threshold" in page


def test_since_picks_the_edition_to_compare_with(two_editions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = fmbuild(monkeypatch, two_editions, "edition", "cut", "2026.3", "--since", "2026.1")
    assert result.exit_code == 0, result.output
    log = json.loads((two_editions / "editions" / "2026.3" / "changelog.json").read_text())
    assert log["previous"] == "2026.1" and len(log["notes_added"]) == 1
    unchanged = json.loads(fmbuild(monkeypatch, two_editions, "edition", "diff", "2026.2", "2026.3", "--format", "json").stdout)
    assert all(not v for k, v in unchanged.items() if isinstance(v, list))
