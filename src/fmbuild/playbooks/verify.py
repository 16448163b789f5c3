"""The playbook part of `fmbuild verify`: which playbooks a selection names, running them after
the evidence modules, and their lines in the text and JSON reports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbuild.playbooks.run import Playbook, PlaybookResult, all_playbooks

if TYPE_CHECKING:
    from rich.console import Console

    from fmbuild.config import Config
    from fmbuild.vault.model import Vault

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(text: str) -> str:
    """A step's text for the terminal: control characters (escape sequences) written visibly."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


STATUS_STYLE = {"passed": "green", "failed": "red", "error": "red", "timeout": "red", "skipped": "yellow"}


def split_targets(targets: list[str], vault: Vault, config: Config, cwd: Path | None = None
                  ) -> tuple[list[Playbook], list[str]]:
    """(playbooks the targets name, the targets left for the module selection). No targets: every playbook."""
    playbooks = all_playbooks(vault)
    if not targets:
        return playbooks, []
    cwd = cwd or Path.cwd()
    vault_root = vault.root.resolve()
    chosen: list[Playbook] = []
    rest: list[str] = []
    for target in targets:
        text = target.strip().rstrip("/")
        names = {text, text.removesuffix(".md")}
        as_path = (cwd / text).resolve()
        for candidate in (as_path, as_path.with_name(as_path.name + ".md")):
            if candidate.is_file() and candidate.is_relative_to(vault_root):
                names.add(candidate.relative_to(vault_root).as_posix().removesuffix(".md"))
        match = [p for p in playbooks if p.name in names or p.name.rsplit("/", 1)[-1] in names]
        if match:
            chosen += [p for p in match if p not in chosen]
        else:
            rest.append(target)
    return chosen, rest


def changed(named: list[Playbook] | None, vault: Vault, config: Config, ref: str) -> list[Playbook]:
    """With `--changed-since REF`: the playbooks named, plus every one whose note or a file its
    steps read changed since REF (raises `SelectionError` for a REF git does not know)."""
    from fmbuild.evidence.selection import changed_files
    from fmbuild.playbooks.run import referenced_files

    _, files = changed_files(ref, config.project_root)
    touched = {p.resolve() for p in files}
    chosen = list(named or [])
    for playbook in all_playbooks(vault):
        if playbook in chosen:
            continue
        note = (vault.root / playbook.note).resolve()
        if note in touched or any(p in touched for p in referenced_files(config.project_root, playbook.steps)):
            chosen.append(playbook)
    return chosen


def print_text(console: Console, results: list[PlaybookResult]) -> None:
    if not results:
        return
    from rich.markup import escape

    console.print()
    console.print("[bold]Playbooks[/]")
    for result in results:
        style = STATUS_STYLE.get(result.status, "white")
        cached = " (cached)" if result.cached else ""
        passed = sum(1 for s in result.steps if s.status == "passed")
        console.print(f"[{style}]{result.status:8}[/] {escape(result.playbook)}  {passed}/{len(result.steps)} steps"
                      f"{cached}  {result.duration_s:.1f} s" + (f"  record {escape(result.record)}" if result.record else ""))
        if result.reason and result.status != "passed":
            console.print(f"         {_shown(result.reason)}", markup=False, highlight=False, soft_wrap=True)
        for step in result.steps:
            if step.status == "passed":
                continue
            style = STATUS_STYLE.get(step.status, "white")
            console.print(f"         [{style}]{step.status}[/] step {escape(step.id)} ({escape(result.note)}:{step.line})")
            if step.status == "skipped":
                console.print(f"           {_shown(step.observed)}", markup=False, highlight=False)
                continue
            # What the step ran and printed is shown as plain text (no markup, nothing interpreted).
            plain = {"markup": False, "highlight": False, "soft_wrap": True}
            console.print("           command:")
            for line in step.command.rstrip("\n").splitlines()[:20]:
                console.print(f"             $ {_shown(line)}", **plain)
            console.print(f"           expected: {_shown(step.unmet or '; '.join(step.expected))}", **plain)
            console.print(f"           observed: {_shown(step.observed)}", **plain)
            tail = step.output.rstrip("\n").splitlines()[-15:]
            console.print("           output:" if tail else "           output: (nothing)")
            for line in tail:
                console.print(f"             | {_shown(line)}", **plain)


def as_json(results: list[PlaybookResult]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in results]
