"""Helpers shared by the commands: finding the project, and the usage error (`fmbuild.errors`)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from fmbuild.config import Config, find_config, load_config
from fmbuild.errors import EXIT_FINDINGS, EXIT_USAGE, FmError

EXIT_OK = 0
__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "fail_usage", "project_config"]


def fail_usage(message: str, fix: str = "") -> NoReturn:
    """Stop with a usage or configuration error (exit 2); the command group prints it."""
    raise FmError(message, fix=fix)


def project_config(start: Path | None = None) -> Config:
    """The project's configuration, found from `start` (default: the current folder) upwards."""
    path = find_config(start or Path.cwd())
    if path is None:
        fail_usage("no fmbuild.toml found here or in any parent folder (run inside the project)")
    return load_config(path)  # type: ignore[arg-type]
