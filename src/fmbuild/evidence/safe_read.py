"""Reading back what a run left in its output folder without ever leaving that folder.

A run's folder lies on the host file system and the module wrote it, so anything in it may be a
trap: a symbolic link to a host file (`metrics.json -> ~/.aws/credentials`), a hard link to a file
the module could not read itself, a FIFO that blocks the reader forever, a device node. Every path
here is opened relative to a directory file descriptor, one component at a time, with `O_NOFOLLOW`
and `O_NONBLOCK`; only a regular file with a single link is read. Anything else is refused with a
reason that goes into the run's log and record.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


class UnsafeFile(OSError):
    """A file of a run's folder that is not read: the message says why."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    rel: str  # posix path relative to the run's folder
    size: int
    problem: str  # '' for a plain file that may be read; else why it is not


def refusal(st: os.stat_result) -> str:
    """Why a file with this (lstat) status is not read back, or '' when it may be."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (never opened)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node (never opened)"
    if stat.S_ISSOCK(mode):
        return "a socket (never opened)"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_nlink != 1:
        # A hard link shares its content with a file elsewhere on the host: it may be one the run
        # could never read itself, so it is not trusted as something the run produced.
        return f"a hard link ({st.st_nlink} names; only files the run wrote itself are read)"
    return ""


def _open_dir(root: Path, parts: list[str]) -> int:
    """A descriptor of root/parts..., refusing a symbolic link at any step."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise UnsafeFile(f"{'/'.join(parts)}: not a plain relative path")
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd


def open_regular(root: Path, rel: str) -> tuple[int, os.stat_result]:
    """Open root/rel for reading: every component without following links; the file itself only
    when it is a regular file with one link. Raises `UnsafeFile` (with the reason) or OSError."""
    parts = rel.split("/")
    dir_fd = _open_dir(root, parts[:-1])
    try:
        st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        why = refusal(st)
        if why:
            raise UnsafeFile(f"{rel} is {why}")
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    why = refusal(st)  # it may have been swapped between the stat and the open
    if why:
        os.close(fd)
        raise UnsafeFile(f"{rel} is {why}")
    return fd, st


def read_bytes(root: Path, rel: str, max_bytes: int) -> bytes:
    """The content of root/rel, at most `max_bytes` (more: `UnsafeFile` without reading it)."""
    fd, st = open_regular(root, rel)
    try:
        if st.st_size > max_bytes:
            raise UnsafeFile(f"{rel} is {st.st_size} bytes, over the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > max_bytes:  # it grew while we read (a process the kill did not reach)
                raise UnsafeFile(f"{rel} grew past the {max_bytes}-byte limit while it was read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def copy_file(root: Path, rel: str, target: Path, max_bytes: int) -> str:
    """Copy root/rel to `target` (created new, never through a link); returns its sha256."""
    fd, st = open_regular(root, rel)
    try:
        if st.st_size > max_bytes:
            raise UnsafeFile(f"{rel} is {st.st_size} bytes, over the {max_bytes}-byte limit")
        digest = hashlib.sha256()
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            total = 0
            while chunk := os.read(fd, _CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise UnsafeFile(f"{rel} grew past the {max_bytes}-byte limit while it was copied")
                digest.update(chunk)
                os.write(out, chunk)
        finally:
            os.close(out)
        return digest.hexdigest()
    finally:
        os.close(fd)


def file_sha256(root: Path, rel: str, max_bytes: int) -> str:
    fd, st = open_regular(root, rel)
    try:
        if st.st_size > max_bytes:
            raise UnsafeFile(f"{rel} is {st.st_size} bytes, over the {max_bytes}-byte limit")
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def walk(root: Path) -> Iterator[OutputFile]:
    """Every non-folder entry under `root`, sorted, never descending through a link; each with
    the reason it may not be read ('' for a plain file)."""
    if not root.is_dir() or root.is_symlink():
        return
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        dirnames.sort()
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        names = list(filenames)
        # fwalk lists a symbolic link to a folder among the folders (and does not enter it)
        for name in list(dirnames):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                dirnames.remove(name)
                names.append(name)
        for name in sorted(names):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                yield OutputFile(prefix + name, 0, f"cannot be inspected: {exc.strerror}")
                continue
            yield OutputFile(prefix + name, st.st_size, refusal(st))


def tree_bytes(root: Path) -> int:
    """Disk space used under `root` (allocated blocks, so sparse files count as what they use),
    without following links; missing or vanishing entries count as nothing."""
    total = 0
    try:
        for _dirpath, _dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
            for name in filenames:
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
    except OSError:
        pass
    return total
