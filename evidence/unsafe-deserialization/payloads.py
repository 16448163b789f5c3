"""Canary payloads: pickles that prove code ran by leaving a marker file, and nothing else.

Every payload is built with the absolute path of its marker, which the caller places inside
the run's output folder; no payload touches anything outside it. The techniques are the ones
real malicious model files use (a `__reduce__` that names a callable the unpickler will call);
only the effect is harmless.
"""

from __future__ import annotations

import codecs
import gzip
import sqlite3
from pathlib import Path
from typing import Any, Callable

import joblib


class Reduce:
    """An object whose pickle is 'call fn(*args)': the unpickler performs the call on load."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.fn, self.args


def _write_marker_code(marker: Path, who: str) -> str:
    # The source text the unpickler is made to run; it only writes the marker.
    return f"open({str(marker)!r}, 'w').write({('executed by ' + who)!r})"


def exec_payload(marker: Path, who: str) -> Reduce:
    """`builtins.exec` of a code string: the textbook malicious pickle."""
    return Reduce(exec, _write_marker_code(marker, who))


def eval_payload(marker: Path, who: str) -> Reduce:
    return Reduce(eval, _write_marker_code(marker, who))


def system_payload(marker: Path, who: str) -> Reduce:
    """`os.system`: a shell command (here `echo` into the marker)."""
    import os

    return Reduce(os.system, f"echo 'executed by {who}' > '{marker}'")


# Evasions: callables that are not on the scanners' deny-lists but still have a side effect
# the attacker chooses (creating or truncating a file at a path of their choice).
def gzip_open_payload(marker: Path) -> Reduce:
    return Reduce(gzip.open, str(marker), "wb")


def sqlite_connect_payload(marker: Path) -> Reduce:
    return Reduce(sqlite3.connect, str(marker))


def codecs_open_payload(marker: Path) -> Reduce:
    return Reduce(codecs.open, str(marker), "w")


def second_stage_payload(stage_two: Path) -> Reduce:
    """`joblib.load` of another file: the scanned file is clean, the file it loads is not."""
    return Reduce(joblib.load, str(stage_two))


def with_weights(state: dict[str, Any], payload: Reduce) -> dict[str, Any]:
    """A checkpoint that looks normal (real weights) with the payload riding along."""
    return {**state, "_metadata_": payload}
