"""A write-once model registry: versions cannot be replaced, blobs are content-addressed and
re-checked on fetch, and every action lands in a hash-chained audit log.

A local folder stands in for the object store; the properties shown (refusal to overwrite,
digest check on read, tamper-evident log) are the ones to demand from a real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from signing import SIGNATURE_FILE, sha256_file


class RegistryError(Exception):
    pass


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.index = root / "index"
        self.audit = root / "audit.jsonl"
        for folder in (self.blobs, self.index):
            folder.mkdir(parents=True, exist_ok=True)

    def publish(self, name: str, version: str, folder: Path, actor: str) -> None:
        entry = self.index / f"{name}@{version}.json"
        if entry.exists():
            self._log("publish.refused", name=name, version=version, actor=actor, reason="version exists")
            raise RegistryError(f"{name}@{version} already published; versions are immutable")
        if not (folder / SIGNATURE_FILE).is_file():
            self._log("publish.refused", name=name, version=version, actor=actor, reason="unsigned")
            raise RegistryError(f"{name}@{version} is unsigned")
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest = sha256_file(path)
            blob = self.blobs / digest
            if not blob.exists():
                shutil.copyfile(path, blob)
                os.chmod(blob, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            files[path.relative_to(folder).as_posix()] = digest
        # O_EXCL: two publishers racing for the same version cannot both win.
        with os.fdopen(os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), "w") as fh:
            json.dump({"name": name, "version": version, "files": files}, fh, sort_keys=True)
        self._log("publish", name=name, version=version, actor=actor, files=files)

    def fetch(self, name: str, version: str, dest: Path) -> Path:
        entry = json.loads((self.index / f"{name}@{version}.json").read_text())
        dest.mkdir(parents=True, exist_ok=True)
        for rel, digest in entry["files"].items():
            blob = self.blobs / digest
            if sha256_file(blob) != digest:
                self._log("fetch.refused", name=name, version=version, file=rel, reason="blob digest mismatch")
                raise RegistryError(f"{name}@{version}: stored {rel} no longer matches its digest")
            shutil.copyfile(blob, dest / rel)
        self._log("fetch", name=name, version=version)
        return dest

    def _log(self, event: str, **fields: Any) -> None:
        previous = "0" * 64
        if self.audit.exists():
            lines = self.audit.read_text().splitlines()
            if lines:
                previous = json.loads(lines[-1])["hash"]
        record = {"event": event, **fields, "prev": previous}
        record["hash"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        with self.audit.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def audit_intact(self) -> tuple[bool, int]:
        """Re-walk the chain; returns (intact, number of the first bad line or 0)."""
        previous = "0" * 64
        for number, line in enumerate(self.audit.read_text().splitlines(), 1):
            record = json.loads(line)
            claimed = record.pop("hash")
            if record["prev"] != previous or hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest() != claimed:
                return False, number
            previous = claimed
        return True, 0
