"""`fmbuild new technique|pattern|anti-pattern|playbook "Title"` and `fmbuild new module NAME`.

A note lands in its type's folder with a fresh id, today's dates, every required field filled
(defaults the author should confirm are marked in a comment) and the section skeleton of
WRITING.md; a technique, pattern or anti-pattern also gets its evidence module, unless
`--module` names an existing one. Nothing is ever overwritten. Exit 0 created, 2 refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fmbuild.commands.common import fail_usage, project_config
from fmbuild.terminal import echo

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault


def _vault() -> tuple[Config, Vault]:
    from fmbuild.vault.load import load_project

    config, vault = load_project()
    if config is None:
        fail_usage("fmbuild new needs the project's fmbuild.toml")
        raise AssertionError  # unreachable: fail_usage exits
    return config, vault


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(given: tuple[str, ...], question: str) -> list[str]:
    """The option's values; asked for at a terminal when none was given (scripts get the
    refusal that names the option instead)."""
    if given or not _interactive():
        return list(given)
    answer = click.prompt(question, default="", show_default=False).strip()
    return [part for part in answer.replace(",", " ").split() if part]


def _report(files: list[Path]) -> None:
    for path in files:
        echo(f"created {os.path.relpath(path, Path.cwd())}")


def _make(kind: str, title: str, **options: object) -> None:
    from fmbuild.scaffold.create import NoteRequest, create_note

    config, vault = _vault()
    request = NoteRequest(kind=kind, title=title, **options)  # type: ignore[arg-type]
    try:
        created = create_note(config, vault, request)
    except OSError as exc:
        fail_usage(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return
    _report(created.files)
    echo("next: fill in the sections, add the module's claims, then: fmbuild check && fmbuild verify", err=True)


chapter_option = click.option("--chapter", type=int, help="Chapter of the table of contents (default by kind, marked to confirm).")
tag_option = click.option("--tag", "tags", multiple=True, help="A tag from fmbuild.toml's vocabulary (repeatable).")
module_option = click.option("--module", help="Back the note with this existing module instead of creating evidence/<slug>.")


@click.group("new")
def command() -> None:
    """Scaffold a note (with its evidence module) or a module, ready for `fmbuild check`."""


@command.command("technique")
@click.argument("title")
@click.option("--atlas", multiple=True, help="MITRE ATLAS technique ID, e.g. AML.T0043 (repeatable; asked for when absent).")
@chapter_option
@tag_option
@module_option
def technique(title: str, atlas: tuple[str, ...], chapter: int | None, tags: tuple[str, ...], module: str | None) -> None:
    """A technique note in techniques/, with its evidence module."""
    atlas_ids = _ask(atlas, "MITRE ATLAS technique ID(s), e.g. AML.T0043")
    _make("technique", title, atlas=atlas_ids, chapter=chapter, tags=list(tags), module=module)


@command.command("pattern")
@click.argument("title")
@click.option("--mitigates", "targets", multiple=True, help="A technique it mitigates, e.g. techniques/evasion (repeatable; asked for when absent).")
@chapter_option
@tag_option
@module_option
def pattern(title: str, targets: tuple[str, ...], chapter: int | None, tags: tuple[str, ...], module: str | None) -> None:
    """A pattern (a control) in patterns/, with its evidence module."""
    chosen = _ask(targets, "Technique(s) it mitigates, e.g. techniques/evasion")
    _make("pattern", title, targets=chosen, chapter=chapter, tags=list(tags), module=module)


@command.command("anti-pattern")
@click.argument("title")
@click.option("--enables", "targets", multiple=True, help="A technique it opens the door to (repeatable; asked for when absent).")
@chapter_option
@tag_option
@module_option
def anti_pattern(title: str, targets: tuple[str, ...], chapter: int | None, tags: tuple[str, ...], module: str | None) -> None:
    """An anti-pattern in patterns/, with its evidence module."""
    chosen = _ask(targets, "Technique(s) it enables, e.g. techniques/evasion")
    _make("anti-pattern", title, targets=chosen, chapter=chapter, tags=list(tags), module=module)


@command.command("playbook")
@click.argument("title")
@click.option("--covers", multiple=True, help="A technique the playbook covers (repeatable).")
@click.option("--applies", multiple=True, help="A pattern the playbook applies (repeatable).")
@chapter_option
@tag_option
def playbook(title: str, covers: tuple[str, ...], applies: tuple[str, ...], chapter: int | None, tags: tuple[str, ...]) -> None:
    """An operational playbook in playbooks/."""
    _make("playbook", title, covers=list(covers), applies=list(applies), chapter=chapter, tags=list(tags))


@command.command("reference")
@click.argument("title")
@chapter_option
@tag_option
@click.option("--module", help="Back the note with this existing module (optional: a reference note may cite other modules' records only).")
def reference(title: str, chapter: int | None, tags: tuple[str, ...], module: str | None) -> None:
    """A reference note in reference/ (orientation, anatomy, assessments, threat models)."""
    _make("reference", title, chapter=chapter, tags=list(tags), module=module)


@command.command("module")
@click.argument("name")
@click.option("--title", help="One line on what it demonstrates (default: the name).")
def module(name: str, title: str | None) -> None:
    """An evidence module evidence/NAME/ (run.py, README.md, module.toml)."""
    from fmbuild.scaffold.create import create_module

    config = project_config()
    created = create_module(config, name, title)
    _report(created.files)
