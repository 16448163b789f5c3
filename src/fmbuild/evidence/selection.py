"""Which modules `fmbuild verify` runs: all, named notes or modules, or what changed since a ref.

Each selected module becomes one `Job` carrying the claims of every note that cites it, so a
module backing an attack note and a defence note runs once and answers both.
"""

from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from fmbuild.errors import FmError
from fmbuild.evidence.contract import ENTRY_POINTS, MODULE_TOML, NOT_INPUTS, read_evidence_block, read_module
from fmbuild.evidence.runner import Job, NoteClaims

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Note, Vault


class SelectionError(FmError, ValueError):
    """A target that names nothing, or a git reference that does not resolve (usage error)."""


@dataclass
class Citations:
    by_module: dict[str, list[NoteClaims]] = field(default_factory=dict)
    note_module: dict[str, str] = field(default_factory=dict)  # note path -> module name


def citations(vault: Vault, config: Config) -> Citations:
    found = Citations()
    for note in sorted(vault.notes.values(), key=lambda n: n.path):
        block = read_evidence_block(note.frontmatter.get("evidence"), config.evidence.path)
        if block is None or not block.name:
            continue
        found.note_module[note.path] = block.name
        found.by_module.setdefault(block.name, []).append(
            NoteClaims(note.path, block.claims, block.device, block.timeout, block.claim_errors)
        )
    return found


def module_names(config: Config) -> list[str]:
    """Every module folder under the evidence root (a folder with an entry point or module.toml)."""
    root = config.evidence_root
    if not root.is_dir():
        return []
    names = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith((".", "_")):
            if any((child / e).is_file() for e in (*ENTRY_POINTS, MODULE_TOML)):
                names.append(child.name)
    return names


def jobs_for(names: Iterable[str], config: Config, cites: Citations) -> list[Job]:
    return [Job(read_module(config.evidence_root / name), list(cites.by_module.get(name, []))) for name in names]


def select(
    targets: list[str],
    vault: Vault,
    config: Config,
    changed_since: str | None = None,
    cwd: Path | None = None,
) -> list[Job]:
    """The jobs to run, in a stable order; raises `SelectionError` for what names nothing."""
    cites = citations(vault, config)
    if not targets and changed_since is None:
        names = set(module_names(config)) | set(cites.by_module)
        return jobs_for(sorted(names), config, cites)
    names: set[str] = set()
    for target in targets:
        names.add(resolve_target(target, vault, config, cites, cwd or Path.cwd()))
    if changed_since is not None:
        names |= changed_modules(changed_since, vault, config, cites)
    return jobs_for(sorted(names), config, cites)


def resolve_target(target: str, vault: Vault, config: Config, cites: Citations, cwd: Path) -> str:
    """A module name from a module folder or name, or a note (path, vault path, id or name)."""
    root = config.evidence_root
    text = target.strip().rstrip("/")
    as_path = (cwd / text).resolve()
    if as_path.is_dir() and as_path.parent == root.resolve():
        return as_path.name
    for candidate in (text, text.removeprefix(config.evidence.path.strip("/") + "/")):
        if "/" not in candidate and (root / candidate).is_dir():
            return candidate
        if candidate in cites.by_module:
            return candidate
    note = _find_note(text, vault, config, cwd)
    if note is None:
        raise SelectionError(f"{target!r} names no evidence module and no note")
    module = cites.note_module.get(note.path)
    if module is None:
        raise SelectionError(f"note {note.path} has no valid evidence block to verify")
    return module


def _find_note(text: str, vault: Vault, config: Config, cwd: Path) -> Note | None:
    vault_root = vault.root.resolve()
    candidates: list[str] = []
    as_path = (cwd / text).resolve()
    for path in (as_path, as_path.with_name(as_path.name + ".md")):
        if path.is_file() and path.is_relative_to(vault_root):
            candidates.append(path.relative_to(vault_root).as_posix())
    rel = text if text.endswith(".md") else text + ".md"
    candidates.append(rel)
    for path in candidates:
        if path in vault.notes:
            return vault.notes[path]
    by_id = [n for n in vault.notes.values() if n.id == text]
    if len(by_id) == 1:
        return by_id[0]
    stem = text.rsplit("/", 1)[-1].removesuffix(".md").lower()
    by_stem = [n for n in vault.notes.values() if n.stem.lower() == stem]
    if len(by_stem) == 1:
        return by_stem[0]
    if len(by_stem) > 1:
        raise SelectionError(f"{text!r} is ambiguous: {', '.join(sorted(n.path for n in by_stem))}")
    return None


# --- what a pull request touched ----------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SelectionError("--changed-since needs git, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise SelectionError(f"git {' '.join(args)} did not finish") from None
    if done.returncode != 0:
        raise SelectionError(f"git {' '.join(args[:2])}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return done.stdout


def changed_files(ref: str, root: Path) -> tuple[str, list[Path]]:
    """(base commit, changed files as absolute paths) between `ref` and the working tree."""
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except SelectionError:
        raise SelectionError(f"--changed-since {ref}: not a commit in this repository") from None
    try:
        base = _git(root, "merge-base", ref, "HEAD").strip()
    except SelectionError:
        base = _git(root, "rev-parse", ref).strip()
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    names = _git(root, "diff", "--name-only", "-z", base, "--").split("\0")
    names += _git(root, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return base, [top / n for n in names if n]


def changed_modules(ref: str, vault: Vault, config: Config, cites: Citations) -> set[str]:
    root = config.project_root
    base, files = changed_files(ref, root)
    evidence_root = config.evidence_root.resolve()
    vault_root = vault.root.resolve()
    all_names = set(module_names(config)) | set(cites.by_module)
    inputs = {name: read_module(evidence_root / name).inputs for name in all_names}
    picked: set[str] = set()
    for path in files:
        path = path.resolve() if path.exists() else path
        if path.is_relative_to(evidence_root):
            parts = path.relative_to(evidence_root).parts
            if len(parts) >= 2 and parts[1] not in NOT_INPUTS:
                picked.add(parts[0])
            continue
        rel_project = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
        if rel_project is not None:
            for name, patterns in inputs.items():
                if any(_input_matches(rel_project, p) for p in patterns):
                    picked.add(name)
        if path.suffix == ".md" and path.is_relative_to(vault_root):
            note_path = path.relative_to(vault_root).as_posix()
            module = cites.note_module.get(note_path)
            if module is not None and _evidence_changed(root, base, path, vault.notes[note_path].frontmatter):
                picked.add(module)
    return {p for p in picked if p in all_names or (evidence_root / p).is_dir()}


def _input_matches(rel: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    return rel == pattern or rel.startswith(pattern + "/") or fnmatch.fnmatch(rel, pattern)


def _evidence_changed(root: Path, base: str, path: Path, frontmatter: dict) -> bool:
    """Whether the note's evidence block differs from the one at `base` (new notes count)."""
    from fmbuild.vault.parse import parse_note

    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    rel = path.relative_to(top).as_posix()
    try:
        old_text = _git(root, "show", f"{base}:{rel}")
    except SelectionError:
        return True
    old = parse_note(rel, old_text).frontmatter.get("evidence")
    return old != frontmatter.get("evidence")
