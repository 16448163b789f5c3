"""A run's `metrics.json`, read with bounds: size, nesting depth, number length, finite numbers.

The module wrote this file, so it is input from an untrusted source: a 350 MB file must be an
error in milliseconds, not minutes of parsing, and `NaN` (which passes `!= 0.5`) or `Infinity`
are not numbers a claim can be judged on nor JSON a record may hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fmbuild.evidence.safe_read import UnsafeFile, read_bytes

METRICS_FILE = "metrics.json"
MAX_DEPTH = 32  # nesting of objects and arrays
MAX_NUMBER_CHARS = 100  # characters of one number literal (a float needs 25 at most)


class MetricsError(ValueError):
    """Why a metrics file is not accepted (the run is an `error` with this reason)."""


def _reject_constant(name: str) -> Any:
    raise MetricsError(f"metrics.json holds {name}, which is not a number a claim can be judged on")


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MetricsError(f"metrics.json holds a {len(text)}-digit number (at most {MAX_NUMBER_CHARS} characters)")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MetricsError(f"metrics.json holds a {len(text)}-character number (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise MetricsError(f"metrics.json holds {text}, which overflows a float")
    return value


def _depth_ok(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def parse_metrics(data: bytes) -> dict[str, Any]:
    """The metrics object in `data`, or `MetricsError` with the reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetricsError(f"metrics.json is not UTF-8: {exc}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)
    except MetricsError:
        raise
    except RecursionError:
        raise MetricsError(f"metrics.json is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise MetricsError(f"metrics.json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MetricsError("metrics.json must hold a JSON object of metrics")
    if not _depth_ok(value):
        raise MetricsError(f"metrics.json is nested deeper than {MAX_DEPTH} levels")
    return value


def read_metrics(out_dir: Path, max_bytes: int) -> dict[str, Any]:
    """Read `out_dir/metrics.json` without following links and within `max_bytes`."""
    try:
        data = read_bytes(out_dir, METRICS_FILE, max_bytes)
    except FileNotFoundError:
        raise MetricsError("the module exited 0 but wrote no metrics.json to FMBUILD_OUT") from None
    except UnsafeFile as exc:
        raise MetricsError(f"{exc}; not read") from None
    except OSError as exc:
        raise MetricsError(f"metrics.json cannot be read: {exc.strerror or exc}") from None
    return parse_metrics(data)


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """JSON for a record or cache entry: standard JSON only (no NaN or Infinity)."""
    return json.dumps(value, allow_nan=False, **kwargs)
