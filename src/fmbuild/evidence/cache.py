"""The run cache under `.fmbuild/evidence/`: successful runs only, keyed by `fingerprint.cache_key`.

    cache/<key>.json     the result (metrics, duration, device, isolation, environment, date, ...)
    runs/<key>/          its output folder (`out/`) and `log.txt`, for records and inspection

A failed, erroring or timed-out run is never stored, so it shows on every run until fixed.
Entries of one module and scale beyond the newest few are pruned. A corrupt entry is a miss.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEEP_PER_MODULE = 3


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: str
    data: dict[str, Any]
    run_dir: Path

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "out"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "log.txt"


class RunCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries = root / "cache"
        self.runs = root / "runs"

    def get(self, key: str) -> CacheEntry | None:
        path = self.entries / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        run_dir = self.runs / key
        if not isinstance(data, dict) or data.get("key") != key or not (run_dir / "out").is_dir():
            return None
        return CacheEntry(key, data, run_dir)

    def put(self, key: str, data: dict[str, Any], work_dir: Path) -> CacheEntry:
        """Move a finished run folder into the cache and write its entry (entry last: it commits)."""
        self.entries.mkdir(parents=True, exist_ok=True)
        self.runs.mkdir(parents=True, exist_ok=True)
        target = self.runs / key
        if target.exists():
            trash = self.runs / f".old-{uuid.uuid4().hex[:8]}"
            target.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        work_dir.rename(target)
        data = {**data, "key": key}
        tmp = self.entries / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True, default=str), encoding="utf-8")
        tmp.replace(self.entries / f"{key}.json")
        self._prune(data.get("module", ""), data.get("scale", ""), keep=key, seed=data.get("seed"))
        return CacheEntry(key, data, target)

    def _prune(self, module: str, scale: str, keep: str, seed: Any = None) -> None:
        # Per seed: the runs of one module on seeds 0, 1 and 2 do not evict each other.
        mine: list[tuple[float, Path]] = []
        for path in self.entries.glob("*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            if (data.get("module") == module and data.get("scale") == scale and data.get("seed") == seed
                    and path.stem != keep):
                mine.append((path.stat().st_mtime, path))
        mine.sort(reverse=True)
        for _, path in mine[KEEP_PER_MODULE - 1 :]:
            path.unlink(missing_ok=True)
            shutil.rmtree(self.runs / path.stem, ignore_errors=True)
