"""Whole-run reuse: the findings of a full check, kept while nothing they depend on changes.

A check's findings are a function of the vault's files (each note's content, the set of
attachments and folders, what could not be read), `fmbuild.toml`, the evidence folder (module
files, records, the extra inputs modules declare), fmbuild's own code and reference lists, and
the Python that runs it. `run_key` hashes exactly those; a run whose key matches the stored one
prints the stored findings without running a rule (`.fmbuild/check-results.bin`). When only
some notes changed, the rules that read one note at a time (`LOCAL_RULES`) run on those notes
alone and the others keep their findings; the rules that look across notes run in full (the
link rule keeps its own per-note findings).

Evidence files are identified by (path, size, mtime, inode); a file modified within the last
seconds could change again without its identity changing, so no key is made then (the run
simply is not reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fmbuild
from fmbuild.diagnostics import Diagnostic, Severity
from fmbuild.vault.cache import fingerprint, read_plain, write_plain

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault

RESULTS_FILE = "check-results.bin"
_RACY_S = 2.0  # files modified more recently than this are not trusted by identity
_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", "out", ".git"}


def run_key(vault: Vault, config: Config | None) -> str | None:
    """What the findings of a full check of `vault` depend on, hashed; None when it cannot be
    told cheaply and safely (then the run is not reused)."""
    found = keys(vault, config)
    return found[1] if found is not None else None


def keys(vault: Vault, config: Config | None) -> tuple[str, str] | None:
    """(context key, run key). The context is everything but the notes' contents: a note whose
    content and context are unchanged keeps the findings of the rules that read only the note
    itself (`LOCAL_RULES`)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{fingerprint()}\0{sys.version}\0{vault.root}\0".encode())
    now = time.time()
    if not _tree(h, Path(fmbuild.__file__).parent, now):
        return None
    if config is None:
        h.update(b"plain vault\0")
    else:
        h.update(json.dumps(config.raw, sort_keys=True, default=str).encode() + b"\0")
        h.update(f"{config.project_root}\0{config.vault_path}\0".encode())
        if not _evidence(h, vault, config, now) or not _step_inputs(h, vault, config, now):
            return None
    for group, paths in (("n", vault.notes), ("a", vault.attachments), ("u", vault.unparsed), ("f", vault.folders)):
        for path in sorted(paths):
            h.update(f"{group}\0{path}\n".encode("utf-8", "surrogateescape"))
    for problem in vault.problems:
        h.update(f"p\0{problem.text()}\n".encode("utf-8", "surrogateescape"))
    context = h.hexdigest()
    for path, note in vault.notes.items():
        if not note.sha256:
            return None
        h.update(f"n\0{path}\0{note.sha256}\0{note.size}\n".encode("utf-8", "surrogateescape"))
    return context, h.hexdigest()


def _tree(h: Any, root: Path, now: float) -> bool:
    """Feed the identity of every file under `root`; False when one is too fresh to trust."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".record"))
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                return False
            if now - st.st_mtime < _RACY_S:
                return False
            rel = os.path.relpath(os.path.join(folder, name), root)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode("utf-8", "surrogateescape"))
    return True


def _evidence(h: Any, vault: Vault, config: Config, now: float) -> bool:
    root = config.evidence_root
    h.update(f"evidence\0{root}\0".encode())
    # A metric reference may name a module by a path the evidence folder does not hold.
    for note in vault.notes.values():
        for ref in note.metric_refs:
            if ref.module is not None and ("/" in ref.module or ref.module.startswith(".")):
                return False
    if not root.is_dir():
        return True
    if not _tree(h, root, now):
        return False
    from fmbuild.evidence.contract import MODULE_TOML, read_module
    from fmbuild.evidence.fingerprint import expand_inputs

    for module in sorted(p for p in root.iterdir() if (p / MODULE_TOML).is_file()):
        spec = read_module(module)
        for name, path in expand_inputs(spec, config.project_root):
            if path is None:
                h.update(f"input\0{name}\0missing\n".encode())
                continue
            if not _identity(h, "input", name, path, now):
                return False
    return True


def _identity(h: Any, kind: str, name: object, path: Path, now: float) -> bool:
    """Feed a file's identity (size, mtime, inode); False when it is unreadable or too fresh."""
    try:
        st = path.stat()
    except OSError:
        return False
    if now - st.st_mtime < _RACY_S:
        return False
    h.update(f"{kind}\0{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode("utf-8", "surrogateescape"))
    return True


_STEP_MARK = re.compile(r"^[ \t]*%%[ \t]*step\b", re.M)


def _step_inputs(h: Any, vault: Vault, config: Config, now: float) -> bool:
    """The identity of the files outside the vault that playbook and command-sheet steps name
    (a steps' record is fresh only while they are unchanged); the notes they name are in the key
    already, by content."""
    from fmbuild.playbooks.run import STEP_TYPES, referenced_files
    from fmbuild.playbooks.steps import parse_steps

    vault_root = vault.root.resolve()
    for path in sorted(p for p, n in vault.notes.items() if n.type in STEP_TYPES):
        try:
            text = (vault.root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the loader reports it; the note's findings say so
        if _STEP_MARK.search(text) is None:
            continue  # no step marks (most playbooks of a large vault): nothing to parse
        steps = parse_steps(text).steps
        for file in referenced_files(config.project_root, steps):
            if file == vault_root or vault_root in file.parents:
                continue
            if not _identity(h, "step-input", file, file, now):
                return False
    return True


# Rules whose findings on a note depend only on that note (and the context: fmbuild.toml, the
# evidence folder, fmbuild itself). The others look across notes (links, ids, the graph).
LOCAL_RULES = frozenset({
    "schema-fields", "schema-tags", "unsafe-html", "framework-ids",
    "evidence-block", "maturity-earned", "evidence-stale", "metric-refs", "metric-format", "log-refs",
    "step-marks",  # a note's own step marks
    # Not "step-maturity": a steps' record is fresh only while every file the steps name is
    # unchanged, and those can be other notes, which the context key leaves out.
})

_Plain = tuple[str, int, int, str, str, str]


@dataclass
class Stored:
    """What the last full run left. Findings stay plain data until asked for: a run that cannot
    reuse the whole result reads only the local findings of the notes it keeps."""

    key: str
    context: str
    plain_findings: list[Any]
    plain_local: dict[str, Any]  # path -> (sha256, rule -> plain findings)

    def findings(self) -> list[Diagnostic] | None:
        """Every finding of the last run (None when they are of the wrong shape)."""
        try:
            return [_diagnostic(item) for item in self.plain_findings]
        except (TypeError, ValueError, KeyError):
            return None

    def local(self, path: str, sha256: str) -> dict[str, list[Diagnostic]] | None:
        """The local rules' findings on the note at `path`, if it still has this content."""
        try:
            sha, rules = self.plain_local[path]
            if sha != sha256:
                return None
            return {name: [_diagnostic(item) for item in items] for name, items in rules.items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def stored(vault: Vault) -> Stored | None:
    """What the last full run left, or None."""
    if vault.cache_dir is None:
        return None
    content, _why = read_plain(vault.cache_dir / RESULTS_FILE)
    if not isinstance(content, dict):
        return None
    findings, local = content.get("findings"), content.get("local")
    if not isinstance(findings, list) or not isinstance(local, dict):
        return None
    return Stored(str(content.get("key")), str(content.get("context")), findings, local)


def store(
    vault: Vault, key: str, context: str, findings: list[Diagnostic], local: dict[str, dict[str, list[Diagnostic]]]
) -> None:
    """Keep a full run's findings, and each note's findings of the local rules."""
    if vault.cache_dir is None:
        return
    notes = vault.notes
    content = {
        "key": key,
        "context": context,
        "findings": [_plain(d) for d in findings],
        "local": {
            path: (notes[path].sha256, {name: [_plain(d) for d in items] for name, items in rules.items()})
            for path, rules in local.items()
        },
    }
    write_plain(vault.cache_dir / RESULTS_FILE, content)


def _plain(d: Diagnostic) -> _Plain:
    return (d.path, d.line, d.column, d.severity._value_, d.code, d.message)  # (.value is a slow property)


_SEVERITY = {s.value: s for s in Severity}


def _diagnostic(item: _Plain) -> Diagnostic:
    path, line, column, severity, code, message = item
    return Diagnostic(path, line, column, _SEVERITY[severity], code, message)
