"""The run cache under `.fmbuild/evidence/`: successful runs only, keyed by `fingerprint.cache_key`.

    cache/<module>/<scale>/<key>.json   the result (metrics, duration, environment, ...) and its MAC
    runs/<key>/                          its output folder (`out/`) and `log.txt`

A failed, erroring or timed-out run is never stored, so it shows on every run until fixed.

Integrity: `.fmbuild/` is an ordinary folder anyone with the checkout can edit, and a verdict (and
with `--record`, a committed record) comes from what an entry says. Each entry therefore carries
an HMAC-SHA256 over its content with a per-user key kept outside the repository
(`$XDG_STATE_HOME/fmbuild/cache.key`, mode 0600; bubblewrap runs never see it, their home is a
private folder). The entry lists the sha256 of every file its run left (`files`), so the record
writer can check each file as it copies it. An entry whose MAC does not verify is a miss and is
removed: the module runs again. Without a usable key the cache is off (every run is fresh).

Entries of one module and scale beyond the newest few are pruned by their file times, without
reading them; entries of the older flat layout and run folders no entry names are removed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmbuild.evidence.metrics_file import dumps_strict

# Newest entries kept per module and scale: three versions of each of the standard's three seeds,
# so the runs of one module on seeds 0, 1 and 2 do not evict each other.
KEEP_PER_MODULE = 9
MAX_ENTRY_BYTES = 64 * 1024 * 1024  # an entry holds metrics already bounded by the metrics cap
KEY_FILE_ENV = "FMBUILD_CACHE_KEY_FILE"  # where the per-user MAC key lives (tests point it elsewhere)


def default_key_file() -> Path:
    explicit = os.environ.get(KEY_FILE_ENV, "")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME", "") or str(Path.home() / ".local" / "state")
    return Path(state) / "fmbuild" / "cache.key"


def load_or_create_key(path: Path) -> bytes | None:
    """The per-user MAC key (created on first use, 0600); None when it cannot be had."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # first writer wins; a racing verify reads the winner's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        data = path.read_bytes()
        return data if len(data) >= 32 else None
    except OSError:
        return None


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

    @property
    def files(self) -> dict[str, str]:
        """sha256 of each file the run left under out/ (and of `log.txt`), as stored and MACed."""
        files = self.data.get("files", {})
        return dict(files) if isinstance(files, dict) else {}


def _canonical(data: dict[str, Any]) -> bytes:
    return dumps_strict(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


class Seal:
    """JSON files that carry an HMAC-SHA256 of their content under the per-user key: what the run
    cache and the playbooks' cache both store. Without a usable key nothing can be sealed."""

    def __init__(self, key_file: Path | None = None) -> None:
        self._key = load_or_create_key(key_file or default_key_file())

    @property
    def usable(self) -> bool:
        return self._key is not None

    def _mac(self, data: dict[str, Any]) -> str:
        assert self._key is not None
        return hmac.new(self._key, _canonical(data), hashlib.sha256).hexdigest()

    def read(self, path: Path) -> tuple[dict[str, Any] | None, bool]:
        """(the data, forged): (None, False) when there is nothing usable to read, (None, True)
        when the file is there but its MAC does not match (edited by hand or by something else)."""
        if self._key is None:
            return None, False
        try:
            if path.is_symlink() or path.stat().st_size > MAX_ENTRY_BYTES:
                return None, False
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None, False
        if not isinstance(stored, dict) or not isinstance(stored.get("mac"), str):
            return None, False
        mac = stored.pop("mac")
        try:
            good = hmac.compare_digest(mac, self._mac(stored))
        except (TypeError, ValueError):  # a non-ASCII MAC string
            good = False
        return (stored, False) if good else (None, True)

    def write(self, path: Path, data: dict[str, Any]) -> None:
        """Write atomically (a temporary file, then a rename), the MAC beside the data."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(dumps_strict({**data, "mac": self._mac(data)}, sort_keys=True, default=str), encoding="utf-8")
        tmp.replace(path)


class RunCache:
    def __init__(self, root: Path, key_file: Path | None = None) -> None:
        self.root = root
        self.entries = root / "cache"
        self.runs = root / "runs"
        self._seal = Seal(key_file)

    @property
    def enabled(self) -> bool:
        return self._seal.usable

    def _entry_path(self, module: str, scale: str, key: str) -> Path:
        return self.entries / module / scale / f"{key}.json"

    def get(self, key: str, module: str, scale: str) -> CacheEntry | None:
        if not self.enabled:
            return None
        path = self._entry_path(module, scale, key)
        stored, forged = self._seal.read(path)
        if forged:
            self._discard(path, key)  # edited by hand or by something else: never trusted
        if stored is None:
            return None
        run_dir = self.runs / key
        if stored.get("key") != key or stored.get("module") != module or not (run_dir / "out").is_dir():
            return None
        return CacheEntry(key, stored, run_dir)

    def put(self, key: str, data: dict[str, Any], work_dir: Path) -> CacheEntry:
        """Move a finished run folder into the cache and write its entry (entry last: it commits)."""
        target = self.runs / key
        if not self.enabled:
            return CacheEntry(key, {**data, "key": key}, work_dir)
        self.runs.mkdir(parents=True, exist_ok=True)
        if target.exists():
            trash = self.runs / f".old-{uuid.uuid4().hex[:8]}"
            target.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        work_dir.rename(target)
        data = {**data, "key": key}
        path = self._entry_path(str(data["module"]), str(data["scale"]), key)
        self._seal.write(path, data)
        self._prune(path.parent, keep=key)
        self._collect_orphans()
        return CacheEntry(key, data, target)

    def _collect_orphans(self, older_than_s: float = 3600.0) -> None:
        """Remove what no entry names any more: entries of an older layout (`cache/<key>.json`)
        and run folders without an entry (old enough not to be one whose entry is being written)."""
        for stale in self.entries.glob("*.json"):
            stale.unlink(missing_ok=True)
        named = {p.stem for p in self.entries.glob("*/*/*.json")}
        cutoff = time.time() - older_than_s
        try:
            folders = list(self.runs.iterdir())
        except OSError:
            return
        for folder in folders:
            try:
                if folder.name not in named and folder.lstat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue

    def _discard(self, path: Path, key: str) -> None:
        path.unlink(missing_ok=True)
        shutil.rmtree(self.runs / key, ignore_errors=True)

    def _prune(self, folder: Path, keep: str) -> None:
        """Keep the newest few entries of one module and scale (file times only, nothing read)."""
        mine: list[tuple[float, Path]] = []
        for path in folder.glob("*.json"):
            if path.stem == keep:
                continue
            try:
                mine.append((path.lstat().st_mtime, path))
            except OSError:
                continue
        mine.sort(reverse=True)
        for _, path in mine[KEEP_PER_MODULE - 1 :]:
            self._discard(path, path.stem)


class SealedStore:
    """Small JSON results (a playbook's verdict) sealed like the run cache's entries: one edited
    by hand, or one without a valid MAC, reads as a miss, so it can change no verdict and reach no
    record. Without a usable key nothing is stored or read."""

    def __init__(self, folder: Path, key_file: Path | None = None) -> None:
        self.folder = folder
        self._seal = Seal(key_file)

    def get(self, name: str) -> dict[str, Any] | None:
        path = self.folder / f"{name}.json"
        data, forged = self._seal.read(path)
        if forged:
            path.unlink(missing_ok=True)
        return data

    def put(self, name: str, data: dict[str, Any]) -> None:
        if self._seal.usable:
            self._seal.write(self.folder / f"{name}.json", data)
