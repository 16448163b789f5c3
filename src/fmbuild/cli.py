"""The `fmbuild` command line: a thin layer over the library.

Each command lives in `fmbuild.commands.<name>` and is imported only when it runs, so
`fmbuild check` never pays for the site or the evidence runner. Exit codes: 0 clean,
1 findings or failed evidence, 2 usage or configuration error.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from fmbuild import __version__
from fmbuild.errors import EXIT_FINDINGS, FmError
from fmbuild.terminal import echo

# command name -> module under fmbuild.commands exposing `command`
COMMANDS: dict[str, str] = {
    "check": "check",
    "verify": "verify",
    "graph": "graph",
    "build": "build",
    "serve": "serve",
    "edition": "edition",
    "new": "new",
}

HELP = {
    "check": "Validate the vault: links, frontmatter, tags, maturity.",
    "verify": "Run evidence modules and check each note's claims.",
    "graph": "Export the technique-to-control graph and answer coverage questions.",
    "build": "Check, then write the website into site/.",
    "serve": "Preview the website with live reload.",
    "edition": "Cut, list, diff, sign and verify frozen Editions.",
    "new": "Scaffold a note or an evidence module.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = COMMANDS.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"fmbuild.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("fmbuild.commands"):
                return None
            raise
        return module.command

    def invoke(self, ctx: click.Context) -> Any:
        """Every command's user-facing error is handled here, once (`fmbuild.errors`)."""
        try:
            return super().invoke(ctx)
        except FmError as exc:
            for line in exc.lines():
                echo(line, err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in fmbuild: one line, not a traceback
            if os.environ.get("FMBUILD_DEBUG"):
                raise
            echo(f"fmbuild: internal error: {exc.__class__.__name__}: {exc} (a bug in fmbuild, not in your "
                 "files; run again with FMBUILD_DEBUG=1 for the traceback and report it)", err=True)
            raise click.exceptions.Exit(EXIT_FINDINGS) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmbuild")
def cli() -> None:
    """fmbuild keeps the MLSecOps Field Manual honest."""


def main() -> None:
    try:
        cli.main(prog_name="fmbuild", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
