"""The staging folder: the converted docs and `mkdocs.yml`, written incrementally.

A file is rewritten only when its bytes change, so `fmbuild serve` (MkDocs watching this
folder) rebuilds only on real changes. Files a previous build wrote and this one does not are
removed; the list of what was written is kept in the folder, so nothing else is ever deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MANIFEST = ".fmbuild-staging.json"


class Staging:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs = root / "docs"
        self.written: set[str] = set()  # docs-relative paths produced by this build
        self.changed = 0

    def _target(self, rel: str) -> Path:
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"refusing to stage {rel!r}: not a plain path inside the docs folder")
        return self.docs.joinpath(*parts)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self._target(rel)
        self.written.add(rel)
        try:
            if target.stat().st_size == len(data) and target.read_bytes() == data:
                return
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.changed += 1

    def copy_file(self, rel: str, source: Path) -> None:
        target = self._target(rel)
        self.written.add(rel)
        try:
            s, t = source.stat(), target.stat()
            if s.st_size == t.st_size and int(s.st_mtime) == int(t.st_mtime):
                return
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        self.changed += 1

    def finish(self) -> int:
        """Remove what the previous build staged and this one did not; returns how many."""
        manifest = self.root / MANIFEST
        try:
            before = set(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            before = set()
        removed = 0
        for rel in sorted(before - self.written):
            try:
                target = self._target(rel)
            except ValueError:
                continue
            if target.is_file() and not target.is_symlink():
                target.unlink()
                removed += 1
        manifest.write_text(json.dumps(sorted(self.written)), encoding="utf-8")
        return removed
