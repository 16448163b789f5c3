"""What git says about the project: the commit an Edition freezes, its date, uncommitted changes.

An Edition names one commit and takes its date from that commit (never from the clock), so two
clones cutting the same name from the same commit write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fmbuild.editions.errors import EditionError


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    date: dt.datetime  # committer date, UTC

    @property
    def day(self) -> str:
        return self.date.strftime("%Y-%m-%d")

    @property
    def iso(self) -> str:
        return self.date.strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise EditionError("git is not installed: an Edition names the commit it freezes") from None


def repository_root(start: Path) -> Path | None:
    done = _git(start, "rev-parse", "--show-toplevel")
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else None


def head_commit(root: Path) -> Commit:
    done = _git(root, "log", "-1", "--format=%H %ct")
    if done.returncode != 0 or not done.stdout.strip():
        raise EditionError(
            f"{root} is not a git repository with a commit: an Edition names the commit it freezes "
            "(commit your work first)"
        )
    sha, stamp = done.stdout.split()
    return Commit(sha, dt.datetime.fromtimestamp(int(stamp), dt.UTC))


def uncommitted(root: Path, paths: list[str]) -> list[str]:
    """Files under `paths` that differ from HEAD (modified, staged, untracked, deleted)."""
    done = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths)
    if done.returncode != 0:
        raise EditionError(f"git status failed: {done.stderr.strip() or done.returncode}")
    found: list[str] = []
    entries = done.stdout.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # a rename's source path follows
        found.append(path)
    return sorted(found)


def blobs_at(root: Path, commit: str, paths: list[str]) -> dict[str, bytes | None]:
    """The bytes of each project-relative path at `commit` (None where the commit lacks it)."""
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise EditionError(f"commit {commit[:12]} is not in this repository (fetch it, or clone with full history)")
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()  # the project's folder inside the repository
    request = "".join(f"{commit}:{prefix}{p}\n" for p in paths).encode()
    try:
        done = subprocess.run(["git", "-C", str(root), "cat-file", "--batch"], input=request, capture_output=True,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise EditionError("git is not installed") from None
    out, found, pos = done.stdout, {}, 0
    for path in paths:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            found[path] = out[pos : pos + size]
            pos += size + 1
        else:
            found[path] = None
    return found
