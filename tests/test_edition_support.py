"""Shared helpers for the Editions tests (no tests here): a recorded copy of the `ed-basic`
project, small git repositories made from it, and running `fmbuild` inside one.

Editions are only ever cut in temporary repositories, never in the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fmbuild.cli import cli

ED_BASIC = Path(__file__).parent / "vaults" / "ed-basic"
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.org",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str, date: str = "2026-03-01T12:00:00Z") -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def commit_all(repo: Path, message: str = "change", date: str = "2026-03-01T12:00:00Z") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="session")
def recorded_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ed-basic with its module's record made by a real `fmbuild verify --record` run."""
    root = tmp_path_factory.mktemp("ed-recorded") / "project"
    shutil.copytree(ED_BASIC, root, ignore=shutil.ignore_patterns(".fmbuild", "out", "__pycache__", "record"))
    done = subprocess.run([sys.executable, "-m", "fmbuild", "verify", "--record"], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "evidence" / "ed-count" / "record" / "record.json").is_file()
    shutil.rmtree(root / ".fmbuild", ignore_errors=True)
    return root


def make_repo(source: Path, dest: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """A fresh git repository holding a copy of `source`, committed once at a fixed date."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".fmbuild", "out", "__pycache__"))
    if edit is not None:
        edit(dest)
    git(dest, "init", "-q", "-b", "main")
    commit_all(dest, "initial")
    return dest


@pytest.fixture
def repo(recorded_project: Path, tmp_path: Path) -> Path:
    return make_repo(recorded_project, tmp_path / "repo")


def fmbuild(monkeypatch: pytest.MonkeyPatch, where: Path, *args: str) -> Result:
    monkeypatch.chdir(where)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
