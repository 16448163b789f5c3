"""`fmbuild check [PATHS] [--vault DIR] [--format text|json|github]`: validate the vault.

Exit 0 when no errors, 1 when there are errors, 2 on usage or configuration errors.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import click

from fmbuild.commands.common import EXIT_FINDINGS, EXIT_OK, fail_usage
from fmbuild.diagnostics import CODES, Severity, render
from fmbuild.terminal import echo


def _select(paths: tuple[str, ...], vault_root: Path) -> set[str] | None:
    """Vault-relative paths of the notes and files under the given PATHS (None: everything)."""
    if not paths:
        return None
    selected: set[str] = set()
    for raw in paths:
        given = Path(raw)
        if not given.exists() and not given.is_symlink():
            fail_usage(f"{raw}: no such file or folder")
        rel = _inside(Path(os.path.abspath(given)), vault_root)
        if rel is None:  # the path as written may pass through symlinked folders
            rel = _inside(Path(os.path.realpath(given.parent)) / given.name, vault_root)
        if rel is None:
            if vault_root.is_relative_to(given.resolve()):
                return None  # a folder holding the whole vault (`fmbuild check .`)
            fail_usage(f"{raw}: not inside the vault ({vault_root})")
        selected.add("" if rel in ("", ".") else rel)
    return selected


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def _wanted(selected: set[str], path: str) -> bool:
    return any(not s or path == s or path.startswith(s + "/") for s in selected)


@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--vault", "vault_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Check this folder as the vault (any Obsidian vault; fmbuild.toml is optional).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="Output format.")
@click.option("--no-cache", is_flag=True, help="Parse every note again (ignore .fmbuild/).")
@click.option("--codes", "list_codes", is_flag=True, help="List every diagnostic code and exit.")
def command(paths: tuple[str, ...], vault_dir: Path | None, fmt: str, no_cache: bool, list_codes: bool) -> None:
    """Validate the vault: links, embeds, headings, blocks, frontmatter, tags, maturity, safety."""
    if list_codes:
        for code, meaning in CODES.items():
            echo(f"{code:22} {meaning}")
        return
    # A check builds a great many objects and frees few: the cyclic garbage collector would
    # walk them again and again (a tenth of a warm run) for nothing. Loading pauses it anyway;
    # the rules run without it too, and it is back on when the check is over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _check(paths, vault_dir, fmt, no_cache)
    finally:
        if collecting:
            gc.enable()


def _check(paths: tuple[str, ...], vault_dir: Path | None, fmt: str, no_cache: bool) -> None:
    from fmbuild.check import run_checks
    from fmbuild.check.links import LinkPrecheck
    from fmbuild.vault import load as loading

    precheck = LinkPrecheck()
    # Notes that must be parsed get their link paths checked by the parse workers too.
    config, vault = loading.load_project(vault=vault_dir, use_cache=not no_cache, analyse=precheck)
    selected = _select(paths, vault.root)
    chosen = None
    if selected is not None:
        every = set(vault.notes) | vault.attachments | vault.unparsed | {d.path for d in vault.problems}
        chosen = {p for p in every if _wanted(selected, p)}
    diagnostics = run_checks(vault, config, precheck.resolver_for(vault), selected=chosen)

    prefix = ""
    if fmt != "json":
        try:
            prefix = os.path.relpath(vault.root, Path.cwd()).replace(os.sep, "/") + "/"
        except ValueError:  # another drive on Windows
            prefix = vault.root.as_posix() + "/"
        if prefix == "./":
            prefix = ""
    output = render(diagnostics, fmt, prefix=prefix)
    if output:
        echo(output)
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    if fmt == "text":
        summary = f"{len(vault.notes)} notes checked: {errors} error(s), {warnings} warning(s)"
        echo(summary, err=True)
    sys.exit(EXIT_FINDINGS if errors else EXIT_OK)
