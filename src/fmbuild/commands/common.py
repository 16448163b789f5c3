"""Helpers shared by the commands: finding the project and turning errors into exit codes."""

from __future__ import annotations

from pathlib import Path

import click

from fmbuild.config import Config, ConfigError, find_config, load_config
from fmbuild.terminal import echo

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def fail_usage(message: str) -> "click.exceptions.Exit":
    """Print a one-line error and exit 2 (usage or configuration)."""
    echo(f"fmbuild: error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_USAGE)


def project_config(start: Path | None = None) -> Config:
    """The project's configuration, found from `start` (default: the current folder) upwards."""
    path = find_config(start or Path.cwd())
    if path is None:
        fail_usage("no fmbuild.toml found here or in any parent folder (run inside the project)")
    try:
        return load_config(path)  # type: ignore[arg-type]
    except ConfigError as exc:
        fail_usage(str(exc))
        raise  # unreachable
