"""`--changed-since REF` on a temporary git repository: module files, declared inputs, and a
note's evidence block select modules; other edits do not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fmbuild.config import load_config
from fmbuild.evidence.selection import SelectionError, select
from fmbuild.vault.load import load_vault
from test_evidence_support import make_project

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    project = make_project(tmp_path)
    (project / "shared").mkdir()
    (project / "shared" / "data.csv").write_text("a\n1\n")
    toml = project / "evidence" / "ev-uncited" / "module.toml"
    toml.write_text('inputs = ["shared/data.csv"]\n')
    git(project, "init", "-q", "-b", "main")
    git(project, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", "-A")
    git(project, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "base")
    git(project, "checkout", "-q", "-b", "feature")
    return project


def changed(repo: Path, ref: str = "main") -> list[str]:
    config = load_config(repo / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    return [job.name for job in select([], vault, config, changed_since=ref, cwd=repo)]


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "change")


def test_nothing_changed_selects_nothing(repo: Path) -> None:
    assert changed(repo) == []


def test_module_file_change_committed_or_not(repo: Path) -> None:
    run_py = repo / "evidence" / "ev-pass" / "run.py"
    run_py.write_text(run_py.read_text() + "\n# tweak\n")
    assert changed(repo) == ["ev-pass"]  # uncommitted
    commit(repo)
    assert changed(repo) == ["ev-pass"]  # committed on the branch


def test_new_untracked_file_in_a_module(repo: Path) -> None:
    (repo / "evidence" / "ev-fail" / "helper.py").write_text("X = 1\n")
    assert changed(repo) == ["ev-fail"]


def test_record_changes_do_not_select(repo: Path) -> None:
    (repo / "evidence" / "ev-pass" / "record").mkdir()
    (repo / "evidence" / "ev-pass" / "record" / "record.json").write_text("{}")
    assert changed(repo) == []


def test_declared_input_change(repo: Path) -> None:
    (repo / "shared" / "data.csv").write_text("a\n2\n")
    assert changed(repo) == ["ev-uncited"]


def test_note_evidence_block_change_selects_its_module(repo: Path) -> None:
    note = repo / "vault" / "techniques" / "failing-technique.md"
    note.write_text(note.read_text().replace("'>= 0.9'", "'>= 0.4'"))
    assert changed(repo) == ["ev-fail"]


def test_note_prose_change_does_not_select(repo: Path) -> None:
    note = repo / "vault" / "techniques" / "failing-technique.md"
    note.write_text(note.read_text() + "\nMore prose, same evidence.\n")
    assert changed(repo) == []


def test_new_note_citing_a_module(repo: Path) -> None:
    source = (repo / "vault" / "techniques" / "erroring.md").read_text()
    (repo / "vault" / "techniques" / "new-note.md").write_text(source.replace("id: ev-001", "id: ev-new"))
    assert changed(repo) == ["ev-error"]


def test_explicit_targets_add_to_the_change_set(repo: Path) -> None:
    config = load_config(repo / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    (repo / "evidence" / "ev-fail" / "helper.py").write_text("X = 1\n")
    names = [j.name for j in select(["ev-pass"], vault, config, changed_since="main", cwd=repo)]
    assert names == ["ev-fail", "ev-pass"]


def test_unknown_ref_is_a_selection_error(repo: Path) -> None:
    with pytest.raises(SelectionError, match="not a commit"):
        changed(repo, "does-not-exist")


def test_outside_a_git_repository(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with pytest.raises(SelectionError):
        changed(project, "main")
