"""Shared test helpers: build small vaults on disk and run the CLI in-process."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

VAULTS = Path(__file__).parent / "vaults"


@pytest.fixture(autouse=True, scope="session")
def _cache_key_outside_home(tmp_path_factory: pytest.TempPathFactory):
    """The run cache's per-user MAC key lives in the user's home; tests keep theirs apart."""
    import os

    previous = os.environ.get("FMBUILD_CACHE_KEY_FILE")
    os.environ["FMBUILD_CACHE_KEY_FILE"] = str(tmp_path_factory.mktemp("fmbuild-state") / "cache.key")
    yield
    if previous is None:
        os.environ.pop("FMBUILD_CACHE_KEY_FILE", None)
    else:
        os.environ["FMBUILD_CACHE_KEY_FILE"] = previous


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def write_files(tmp_path: Path) -> Callable[[dict[str, str | bytes], Path | None], Path]:
    """Write {relative path: text or bytes} under a folder (default: tmp_path/vault)."""

    def write(files: dict[str, str | bytes], root: Path | None = None) -> Path:
        root = root or tmp_path / "vault"
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return root

    return write


@pytest.fixture
def fixture_vault(tmp_path: Path) -> Callable[[str], Path]:
    """A writable copy of tests/vaults/<name> (the project folder when it has fmbuild.toml)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(VAULTS / name, target, symlinks=True)
        return target

    return copy


@pytest.fixture
def fmbuild(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `fmbuild ARGS...` in-process (optionally from folder `cwd`)."""
    from fmbuild.cli import cli

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
