"""`fmbuild verify --shard K/N`: split the selected modules into N balanced parts for a CI matrix.

Balanced by what each module cost last time: the `duration_s` of its committed record (one
seed's run), the same for every seed. Modules without a record count as the median of those
that have one. The split is the longest-processing-time rule (longest module first, onto the
lightest shard; ties by name and by shard number), so it is deterministic for a given selection
and record set, and every module lands in exactly one shard.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from statistics import median
from typing import Protocol, TypeVar

DEFAULT_SECONDS = 60.0  # when no selected module has a record to learn from
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class _Spec(Protocol):
    @property
    def path(self) -> Path: ...


class _HasModule(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> _Spec: ...


J = TypeVar("J", bound=_HasModule)


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); a ValueError says what is wrong."""
    m = _SHARD.match(text)
    if not m:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 1/4")
    k, n = int(m[1]), int(m[2])
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard {text}: K must be between 1 and N (N >= 1)")
    return k, n


def recorded_seconds(module_dir: Path) -> float | None:
    """The duration of the module's committed record, or None when it has none (or it is unreadable)."""
    try:
        value = json.loads((module_dir / "record" / "record.json").read_text(encoding="utf-8")).get("duration_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def estimates(folders: dict[str, Path]) -> dict[str, float]:
    """Seconds per module name, from the records in each module's folder."""
    known = {name: s for name, folder in folders.items() if (s := recorded_seconds(folder)) is not None}
    fallback = median(known.values()) if known else DEFAULT_SECONDS
    return {name: known.get(name, fallback) for name in folders}


def split(names: list[str], seconds: dict[str, float], n: int) -> list[list[str]]:
    """N parts, each in the order `names` gave; longest-processing-time assignment."""
    loads = [0.0] * n
    owner: dict[str, int] = {}
    for name in sorted(names, key=lambda m: (-seconds[m], m)):
        target = min(range(n), key=lambda i: (loads[i], i))
        owner[name] = target
        loads[target] += seconds[name]
    return [[m for m in names if owner[m] == i] for i in range(n)]


def shard(jobs: list[J], k: int, n: int) -> tuple[list[J], float]:
    """The jobs of shard K of N, and their estimated seconds (one seed each)."""
    names = [job.name for job in jobs]
    seconds = estimates({job.name: Path(job.spec.path) for job in jobs})
    mine = set(split(names, seconds, n)[k - 1])
    chosen = [job for job in jobs if job.name in mine]
    return chosen, sum(seconds[job.name] for job in chosen)
