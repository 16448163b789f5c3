"""`fmbuild edition cut`: what it writes, and everything it refuses."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_edition_support import commit_all, fmbuild, replace_in

from fmbuild.editions import store

pytest_plugins = ["test_edition_support"]


def test_cut_writes_a_whole_edition(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 0, result.output
    folder = repo / "editions" / "2026.1"
    assert sorted(p.name for p in folder.iterdir()) == ["CHANGELOG.md", "changelog.json", "manifest.json", "manual.html"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # not the staging folder's private 0700
    manifest = json.loads((folder / "manifest.json").read_text())
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert manifest["name"] == "2026.1" and manifest["commit"] == head
    assert manifest["date"] == "2026-03-01" and manifest["commit_date"] == "2026-03-01T12:00:00Z"
    assert manifest["previous"] is None and manifest["unverified"] == []
    notes = {n["path"]: n for n in manifest["notes"]}
    assert set(notes) == {"techniques/threshold-evasion.md", "patterns/score-monitoring.md",
                          "playbooks/triage.md", "sources/reading.md"}
    tech = notes["techniques/threshold-evasion.md"]
    assert tech["id"] == "ed-tech-001" and tech["type"] == "technique" and tech["maturity"] == "reviewed"
    assert tech["chapter"] == 4 and tech["frameworks"] == ["AML.T0043"] and tech["evidence_state"] == "passing"
    assert tech["evidence"] == {"module": "evidence/ed-count", "claims": {"points": "== 1000", "flagged_rate": "<= 0.2"}}
    import hashlib
    raw = (repo / "vault" / "techniques" / "threshold-evasion.md").read_bytes()
    assert tech["sha256"] == hashlib.sha256(raw).hexdigest()
    [module] = manifest["modules"]
    assert module["name"] == "ed-count" and module["record"]["status"] == "passed"
    assert module["record"]["metrics"]["points"] == 1000
    assert module["inputs_hash"] == module["record"]["inputs_hash"]
    assert "record.json" in module["record_files"]
    assert {"source": "patterns/score-monitoring.md", "target": "techniques/threshold-evasion.md", "type": "mitigates",
            "use": "Watching the score distribution shows inputs crowding under the threshold."} in manifest["edges"]
    assert manifest["frameworks"]["covered"] == {"AML.T0043": "Craft Adversarial Data"}
    assert manifest["versions"]["fmbuild"] and "click" in manifest["versions"]["dependencies"]
    for name in ("CHANGELOG.md", "changelog.json", "manual.html"):
        data = (folder / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    # Listed by the command and read by the site exactly as committed.
    listing = fmbuild(monkeypatch, repo, "edition", "list")
    assert listing.exit_code == 0 and "2026.1" in listing.output and "4 notes" in listing.output
    from fmbuild.site.editions import find_editions
    [seen], problems = find_editions(repo / "editions")
    assert problems == [] and seen.name == "2026.1" and seen.date == "2026-03-01" and seen.manual.is_file()


def test_a_second_cut_of_the_same_name_is_refused(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    before = {p.name: p.read_bytes() for p in (repo / "editions" / "2026.1").iterdir()}
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 2
    assert "Edition 2026.1 exists" in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in (repo / "editions" / "2026.1").iterdir()} == before


@pytest.mark.parametrize("crash", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_interrupted_cut_leaves_no_partial_edition(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                      crash: BaseException) -> None:
    real_write = store._write_synced
    written: list[str] = []

    def failing_write(path: Path, data: bytes) -> None:
        if written:  # the first file lands, the second one fails: a crash half-way
            raise crash
        written.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(store, "_write_synced", failing_write)
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code != 0 and "Traceback" not in result.output
    if isinstance(crash, OSError):
        assert "No space left on device" in result.output
    assert written  # it did get half-way
    assert list((repo / "editions").iterdir()) == []  # neither the Edition nor its staging folder
    monkeypatch.setattr(store, "_write_synced", real_write)
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0


def test_a_leftover_staging_folder_is_reported_not_read(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "editions" / ".2026.1.abcd.partial").mkdir(parents=True)
    result = fmbuild(monkeypatch, repo, "edition", "list")
    assert result.exit_code == 0 and "interrupted cut" in result.output and "No Edition yet" in result.output


def test_check_errors_refuse_the_cut_and_are_listed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replace_in(repo / "vault" / "playbooks" / "triage.md", "[[sources/reading]]", "[[sources/missing]]")
    commit_all(repo)
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 1
    assert "fmbuild check found 1 error(s)" in result.output
    assert "vault/playbooks/triage.md:" in result.output and "link-broken" in result.output
    assert not (repo / "editions" / "2026.1").exists()


def test_stale_evidence_is_named_and_allow_unverified_marks_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(repo / "evidence" / "ed-count" / "run.py", "a") as handle:
        handle.write("# changed after the record was made\n")
    commit_all(repo)
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 1
    assert "the evidence of 2 note(s) does not stand" in result.output
    assert "vault/techniques/threshold-evasion.md: stale" in result.output
    assert "vault/patterns/score-monitoring.md: stale" in result.output
    assert not (repo / "editions").exists() or not any((repo / "editions").iterdir())

    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1", "--allow-unverified")
    assert result.exit_code == 0, result.output
    assert "warning: not verified at this Edition: techniques/threshold-evasion.md: stale" in result.output
    folder = repo / "editions" / "2026.1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(u["path"] for u in manifest["unverified"]) == ["patterns/score-monitoring.md", "techniques/threshold-evasion.md"]
    assert {n["path"]: n["evidence_state"] for n in manifest["notes"]}["techniques/threshold-evasion.md"] == "stale"
    manual = (folder / "manual.html").read_text()
    assert manual.count("Not verified at this Edition") == 2
    assert "1 unverified" not in fmbuild(monkeypatch, repo, "edition", "list").output
    assert "2 unverified" in fmbuild(monkeypatch, repo, "edition", "list").output


def test_uncommitted_changes_refuse_the_cut(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replace_in(repo / "vault" / "sources" / "reading.md", "own notes", "own notes, edited")
    (repo / "vault" / "sources" / "new.md").write_text("# untracked\n")
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 2
    assert "2 file(s)" in result.output and "vault/sources/reading.md" in result.output and "vault/sources/new.md" in result.output
    assert not (repo / "editions").exists()


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a b", "x" * 80, "2026.1.partial", ""])
def test_unusable_names_are_refused(repo: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    result = fmbuild(monkeypatch, repo, "edition", "cut", name)
    assert result.exit_code == 2 and "not a usable Edition name" in result.output
    assert not (repo / "editions").exists()


def test_a_project_without_git_is_refused(recorded_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(recorded_project, plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    result = fmbuild(monkeypatch, plain, "edition", "cut", "2026.1")
    assert result.exit_code == 2 and "not a git repository with a commit" in result.output


def test_commands_on_missing_editions_say_so(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for args in (["diff", "2026.1", "2026.2"], ["verify", "2026.1"], ["sign", "2026.1", "--key", "/nonexistent/key"]):
        result = fmbuild(monkeypatch, repo, "edition", *args)
        assert result.exit_code == 2, args
        assert "no Edition named '2026.1'" in result.output or "cannot read the signing key" in result.output


def test_allow_dirty_cuts_and_lists_what_was_uncommitted(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replace_in(repo / "vault" / "sources" / "reading.md", "own notes", "own notes, edited")
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1", "--allow-dirty")
    assert result.exit_code == 0, result.output
    manifest = json.loads((repo / "editions" / "2026.1" / "manifest.json").read_text())
    assert manifest["uncommitted"] == ["vault/sources/reading.md"]
