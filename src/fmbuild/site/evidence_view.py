"""The committed evidence records, read once per build and shaped for the pages.

Nothing here invents a value: a module without a record is "not run", a metric the record
lacks is "not measured", and a record whose module changed since it ran is marked stale.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from fmbuild.evidence import safe_read
from fmbuild.evidence.claims import MissingMetric, lookup
from fmbuild.evidence.contract import read_evidence_block
from fmbuild.evidence.format_spec import safe_spec
from fmbuild.evidence.records import Record, is_fresh, load_record, log_lines
from fmbuild.vault.model import Note

# Artifacts that are published: images shown inline, data and text offered as downloads.
# Anything else (HTML, SVG, scripts, archives) could run or fetch in the reader's browser, so
# it is listed by name but not copied into the site.
IMAGE_TYPES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
DATA_TYPES = frozenset({".json", ".jsonl", ".txt", ".log", ".csv", ".tsv", ".ipynb"})
STATUSES = ("passed", "failed", "error", "timeout", "skipped")


@dataclass
class Artifact:
    name: str  # relative to the record's artifact folder
    source: Path
    kind: str  # 'image' | 'data' | 'withheld'


@dataclass
class ModuleEvidence:
    name: str  # 'evasion-fgsm'
    folder: Path
    record: Record | None
    fresh: bool | None  # None when there is no record
    artifacts: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # notes backed by it (vault paths)
    _events: dict[str, list[str]] | None = field(default=None, repr=False)

    def log_lines(self, event: str, count: int) -> list[str]:
        """The first `count` recorded log lines whose JSON `event` is `event` (fewer if the log
        has fewer; none without a record)."""
        if self.record is None:
            return []
        if self._events is None:
            self._events = log_lines(self.record)
        return self._events.get(event, [])[:count]

    @property
    def status(self) -> str:
        if self.record is None:
            return "not run"
        return self.record.status if self.record.status in STATUSES else "error"

    @property
    def docs_dir(self) -> str:
        return f"runs/{self.name}"

    def claims_for(self, note: Note) -> list[dict[str, Any]]:
        if self.record is None:
            return []
        keys = {note.path, note.path[:-3]}
        if note.id:
            keys.add(note.id)
        return [c for c in self.record.claims if isinstance(c, dict) and str(c.get("note")) in keys]

    def metric(self, dotted: str) -> tuple[bool, Any]:
        """(found, value) for a metric path in the record, resolved exactly as claims and
        `fmbuild check` resolve it (`claims.lookup`: nested groups, flat keys holding dots,
        list indices); a group or a list is not a value, so it is not found."""
        if self.record is None:
            return False, None
        try:
            return True, lookup(self.record.metrics, dotted)
        except MissingMetric:
            return False, None


class EvidenceBook:
    """Every module the vault refers to (and every module folder on disk), with its record."""

    def __init__(self, evidence_root: Path | None, evidence_path: str = "evidence") -> None:
        self.root = evidence_root
        self.evidence_path = evidence_path
        self.modules: dict[str, ModuleEvidence] = {}
        if evidence_root is not None and evidence_root.is_dir():
            for folder in sorted(p for p in evidence_root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
                if (folder / "run.py").is_file() or (folder / "notebook.ipynb").is_file():
                    self._load(folder.name)

    def _load(self, name: str) -> ModuleEvidence | None:
        if name in self.modules:
            return self.modules[name]
        if self.root is None:
            return None
        folder = self.root / name
        record = load_record(folder) if folder.is_dir() else None
        fresh: bool | None = None
        if record is not None:
            try:
                fresh = is_fresh(record, folder)
            except OSError:
                fresh = False
        module = ModuleEvidence(name, folder, record, fresh, _artifacts(record))
        self.modules[name] = module
        return module

    def module_name(self, note: Note) -> str | None:
        block = read_evidence_block(note.frontmatter.get("evidence"), self.evidence_path)
        if block is None or not block.name:
            return None
        return block.name

    def for_note(self, note: Note) -> ModuleEvidence | None:
        name = self.module_name(note)
        if name is None:
            return None
        module = self._load(name)
        if module is not None and note.path not in module.notes:
            module.notes.append(note.path)
        return module

    def named(self, name: str) -> ModuleEvidence | None:
        return self._load(name)


def _artifacts(record: Record | None) -> list[Artifact]:
    if record is None:
        return []
    found = []
    for name in record.artifacts:
        rel = PurePosixPath(str(name))
        if rel.is_absolute() or ".." in rel.parts:
            continue
        source = record.artifact_dir / rel
        if not _plain_file(record.artifact_dir, rel.as_posix()):
            continue
        suffix = rel.suffix.lower()
        kind = "image" if suffix in IMAGE_TYPES else "data" if suffix in DATA_TYPES else "withheld"
        found.append(Artifact(rel.as_posix(), source, kind))
    return found


def _plain_file(root: Path, rel: str) -> bool:
    """A regular file reached without following any link on the way (a committed record's
    `artifacts/dir -> /etc` must not put host files on the site)."""
    try:
        fd, _ = safe_read.open_regular(root, rel)
    except OSError:  # UnsafeFile included
        return False
    os.close(fd)
    return True


def format_value(value: Any, spec: str | None = None) -> str:
    """A recorded value as prose shows it: the author's format spec when given, else a compact
    form (four significant digits for floats). Never rounds to something the run did not give
    without the spec saying so."""
    spec = safe_spec(spec)  # a spec outside the grammar or its bounds is never used
    if spec:
        try:
            return format(value, spec)
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        if isinstance(value, bool) or value is None:
            return json.dumps(value)
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else str(value)
        if isinstance(value, (int, str)):
            return str(value)
        return json.dumps(value, sort_keys=True)
    except ValueError:  # an integer past Python's int-to-string limit
        return f"{float(value):.4g}" if isinstance(value, int) and value.bit_length() < 1024 else "(too large to show)"
