"""Capturing a run's stdout and stderr with a size cap: keep the head and the tail, drop the middle.

A module that prints 200 MB must neither fill the disk nor stall on a full pipe: the reader keeps
draining the pipe and keeps only the first and last halves of the cap.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

CHUNK = 1 << 16


class CappedLog:
    def __init__(self, cap_bytes: int) -> None:
        self.cap = max(cap_bytes, 2 * CHUNK)
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail.append(data)
        self.tail_size += len(data)
        limit = self.cap - self.cap // 2
        while self.tail_size - len(self.tail[0]) >= limit:
            self.tail_size -= len(self.tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + self.tail_size

    def content(self) -> bytes:
        tail = b"".join(self.tail)
        limit = self.cap - self.cap // 2
        if len(tail) > limit:
            tail = tail[-limit:]
            # start the kept tail at a line boundary when one is near
            cut = tail.find(b"\n")
            if 0 <= cut < 4096:
                tail = tail[cut + 1 :]
        if not self.truncated:
            return bytes(self.head) + tail
        dropped = self.total - len(self.head) - len(tail)
        marker = f"\n[fmbuild: {dropped} bytes of output cut here; the log keeps its first and last parts]\n"
        return bytes(self.head) + marker.encode() + tail

    def write(self, path: Path) -> None:
        path.write_bytes(self.content())


class PipeReader(threading.Thread):
    """Drains a file descriptor into a `CappedLog` until end of file."""

    def __init__(self, fd: int, log: CappedLog) -> None:
        super().__init__(daemon=True, name="fmbuild-log-reader")
        self.fd = fd
        self.log = log

    def run(self) -> None:
        try:
            while True:
                data = os.read(self.fd, CHUNK)
                if not data:
                    break
                self.log.feed(data)
        except OSError:
            pass
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass


def tail_lines(text: str, lines: int = 40, max_chars: int = 8000) -> str:
    """The last `lines` lines of a log, at most `max_chars` characters."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    out = "\n".join(kept)
    return out[-max_chars:]
