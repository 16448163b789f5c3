"""The pre-commit hook: `fmbuild check` on the staged notes of a temporary git repository, with
the repository's own `.pre-commit-config.yaml`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_edition_support import ED_BASIC, GIT_ENV

pytest.importorskip("pre_commit", reason="pre-commit is a dev dependency")

REPO = Path(__file__).resolve().parent.parent


def run(repo: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(repo.parent / "pre-commit-home")}
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ED_BASIC, root, ignore=shutil.ignore_patterns(".fmbuild", "out", "__pycache__", "record"))
    shutil.copy(REPO / ".pre-commit-config.yaml", root / ".pre-commit-config.yaml")
    (root / ".venv").symlink_to(Path(sys.prefix))  # the hook runs .venv/bin/fmbuild, as after setup.sh
    (root / ".gitignore").write_text(".venv\n.fmbuild/\n")
    assert run(root, "git", "init", "-q", "-b", "main").returncode == 0
    assert run(root, "git", "add", "-A").returncode == 0
    assert run(root, "git", "commit", "-q", "-m", "initial").returncode == 0
    installed = run(root, sys.executable, "-m", "pre_commit", "install")
    assert installed.returncode == 0, installed.stderr
    return root


def test_config_and_manifest_are_valid() -> None:
    for args in (["validate-config", ".pre-commit-config.yaml"], ["validate-manifest", ".pre-commit-hooks.yaml"]):
        done = subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=REPO, capture_output=True, text=True,
                              check=False, env={**os.environ, "PRE_COMMIT_HOME": "/nonexistent-unused"})
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_staged_note_stops_the_commit(repo: Path) -> None:
    note = repo / "vault" / "playbooks" / "triage.md"
    note.write_text(note.read_text().replace("[[sources/reading]]", "[[sources/nowhere]]"))
    run(repo, "git", "add", str(note))
    done = run(repo, "git", "commit", "-m", "break a link")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "fmbuild check (staged notes)" in output and "Failed" in output
    assert "vault/playbooks/triage.md" in output and "link-broken" in output
    assert run(repo, "git", "rev-list", "--count", "HEAD").stdout.strip() == "1"

    note.write_text(note.read_text().replace("[[sources/nowhere]]", "[[sources/reading|the reading list]]"))
    run(repo, "git", "add", str(note))
    fixed = run(repo, "git", "commit", "-m", "fix the link")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Passed" in fixed.stdout + fixed.stderr


def test_only_staged_notes_are_reported(repo: Path) -> None:
    broken = repo / "vault" / "sources" / "reading.md"
    broken.write_text(broken.read_text() + "\nSee [[nowhere]].\n")
    run(repo, "git", "add", str(broken))
    assert run(repo, "git", "commit", "-q", "--no-verify", "-m", "broken, committed without the hook").returncode == 0
    other = repo / "vault" / "patterns" / "score-monitoring.md"
    other.write_text(other.read_text() + "\nOne more sentence.\n")
    run(repo, "git", "add", str(other))
    done = run(repo, "git", "commit", "-m", "edit another note")
    assert done.returncode == 0, done.stdout + done.stderr  # the old breakage is CI's to report


def test_files_outside_the_vault_skip_the_hook(repo: Path) -> None:
    (repo / "evidence" / "ed-count" / "README.md").write_text("# ed-count\n\nEdited.\n")
    run(repo, "git", "add", "-A")
    done = run(repo, "git", "commit", "-m", "module readme")
    assert done.returncode == 0 and "(no files to check)Skipped" in (done.stdout + done.stderr).replace(".", "")
