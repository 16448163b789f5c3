"""`fmbuild build [--strict] [--output DIR] [--verify]`: check, then write the website.

Exit 0 when the site was written, 1 when check or MkDocs found problems that stop the build,
2 on usage errors (a bad output folder, a configuration error).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from fmbuild.commands.common import EXIT_FINDINGS, EXIT_USAGE, fail_usage
from fmbuild.diagnostics import Severity, render
from fmbuild.terminal import echo


@click.command("build")
@click.option("--strict", is_flag=True, help="Fail on warnings too (check's and MkDocs').")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Output folder (default: [site].output, site/).")
@click.option("--vault", "vault_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Build this folder as the vault (any Obsidian vault; needs --output without fmbuild.toml).")
@click.option("--verify", "fresh", is_flag=True,
              help="Run `fmbuild verify --record` first, so the site shows fresh records.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def command(strict: bool, output: Path | None, vault_dir: Path | None, fresh: bool, quiet: bool) -> None:
    """Check the vault, convert it, and build the website with MkDocs and Material."""
    from fmbuild.site.build import BuildError, BuildOptions, build_site
    from fmbuild.vault import load as loading

    config, vault = loading.load_project(vault=vault_dir)
    if fresh:
        if config is None:
            fail_usage("--verify needs the project's fmbuild.toml (evidence modules live beside it)")
        echo("running fmbuild verify --record ...", err=True)
        done = subprocess.run([sys.executable, "-m", "fmbuild", "verify", "--record"], cwd=config.project_root, check=False)  # type: ignore[union-attr]
        if done.returncode == EXIT_USAGE:
            fail_usage("fmbuild verify could not run (see above); nothing was built")
        config, vault = loading.load_project(vault=vault_dir)  # records changed: read again

    say = (lambda _m: None) if quiet else (lambda m: echo(m, err=True))
    # Someone else's vault (no fmbuild.toml) is built with its findings reported, as Obsidian
    # Publish and Quartz build it; the Field Manual's own build, or --strict, refuses on them.
    enforce = config is not None or strict
    try:
        report = build_site(config, vault, BuildOptions(output=output, strict=strict, fail_on_check=enforce), log=say)
    except BuildError as exc:
        if exc.diagnostics:
            echo(render(exc.diagnostics, "text", prefix=_prefix(vault.root)), err=True)
        echo(f"fmbuild: error: {exc}", err=True)
        raise click.exceptions.Exit(exc.exit_code) from None

    if report.diagnostics:
        echo(render(report.diagnostics, "text", prefix=_prefix(vault.root)), err=True)
    for message in report.mkdocs_warnings:
        echo(f"mkdocs: warning: {message}", err=True)
    for notice in report.notices:
        echo(f"notice: {notice}", err=True)
    if not enforce and report.diagnostics:
        errors = sum(1 for d in report.diagnostics if d.severity is Severity.ERROR)
        echo(f"notice: built with {errors} error(s) and {len(report.diagnostics) - errors} other finding(s) of check "
             "reported above: this vault has no fmbuild.toml, so they do not stop the build (--strict makes them)",
             err=True)
    t = report.timings
    say(
        f"built {report.pages} pages into {report.output} in {t.get('total', 0):.1f} s "
        f"(check {t.get('check', 0):.1f} s, graph {t.get('graph', 0):.1f} s, "
        f"convert {t.get('convert', 0):.1f} s, mkdocs {t.get('mkdocs', 0):.1f} s, sanitize {t.get('sanitize', 0):.1f} s)"
    )
    if report.mkdocs_warnings and strict:
        raise click.exceptions.Exit(EXIT_FINDINGS)


def _prefix(vault_root: Path) -> str:
    """Diagnostic paths relative to the current folder, as `fmbuild check` prints them."""
    try:
        rel = os.path.relpath(vault_root, Path.cwd()).replace(os.sep, "/")
    except ValueError:
        return vault_root.as_posix() + "/"
    return "" if rel == "." else rel + "/"
