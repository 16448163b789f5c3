"""Positional edits on a text: collected from many passes, applied once, never overlapping."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Edit:
    start: int
    end: int
    text: str


class EditSet:
    """Edits over one text. The first edit to claim a span wins; a later one that overlaps it
    is refused (`add` returns False), so passes run in priority order."""

    def __init__(self) -> None:
        self._edits: list[Edit] = []
        self._starts: list[int] = []  # claimed spans, sorted by start (they never overlap)
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_right(self._starts, start)
        if start == end:  # an insertion collides only with a span strictly around it
            return bool(i) and self._starts[i - 1] < start < self._ends[i - 1]
        if i and self._ends[i - 1] > start:
            return True  # the span starting at or before us reaches into us
        return i < len(self._starts) and self._starts[i] < end

    def add(self, start: int, end: int, text: str) -> bool:
        if self.overlaps(start, end):
            return False
        self._edits.append(Edit(start, end, text))
        i = bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        return True

    def apply(self, text: str, start: int = 0, end: int | None = None) -> str:
        """The text between `start` and `end` with every edit inside it applied."""
        end = len(text) if end is None else end
        out: list[str] = []
        pos = start
        for edit in sorted(self._edits, key=lambda e: (e.start, e.end)):
            if edit.start < start or edit.end > end:
                continue
            out.append(text[pos : edit.start])
            out.append(edit.text)
            pos = edit.end
        out.append(text[pos:end])
        return "".join(out)
