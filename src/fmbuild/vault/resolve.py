"""Where a link points, with Obsidian's semantics.

- Case-insensitive everywhere; `.md` optional for notes.
- `/path` is from the vault root; `./x` and `../x` are relative to the linking note's folder;
  any other path is tried from the root, then relative to the linking note, then by name.
- By name: the notes whose path ends with the link path (`[[evasion]]`, `[[techniques/evasion]]`
  both name `vault/techniques/evasion.md`). One candidate resolves; several resolve only when
  exactly one sits in the linking note's own folder, otherwise the link is ambiguous and every
  candidate is reported.
- Headings are matched as Obsidian matches them: case-insensitively and ignoring punctuation
  and repeated spaces, so `[[n#Step 1 Do X]]` finds `## Step 1: Do X`; `[[n#A#B]]` finds a
  heading B under a heading A. Block references (`#^id`) match `^id` markers.

Results are memoised per (target, folder of the linking note): a vault links to the same
targets over and over.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal

from fmbuild.vault.model import Heading, Link, Note, Vault

try:  # rapidfuzz makes "did you mean" fast on large vaults; difflib gives the same answers slower
    from rapidfuzz import fuzz as _fuzz
    from rapidfuzz import process as _process
except ImportError:  # pragma: no cover - exercised only where rapidfuzz is absent
    _process = None
    _fuzz = None

Status = Literal["ok", "broken", "ambiguous"]


@dataclass(slots=True)
class Resolution:
    status: Status
    path: str | None  # vault-relative path of the note or attachment (None unless ok)
    is_note: bool
    candidates: list[str] = field(default_factory=list)  # every match when ambiguous
    heading_ok: bool | None = None  # None: the link names no heading (or it cannot be checked)
    block_ok: bool | None = None  # None: the link names no block
    suggestion: str | None = None  # closest existing target, as link text, when broken
    heading: Heading | None = None  # the heading the link points to, when found
    escapes: bool = False  # a relative path that climbs out of the vault
    looked_for: str | None = None  # the vault path that was looked for, when broken

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_NOT_WORD = re.compile(r"[^\w\-]+|_+")


def canonical_heading(text: str) -> str:
    """A heading as Obsidian compares it: lower case, punctuation and runs of spaces ignored."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def heading_matches(note: Note, text: str) -> Heading | None:
    """The heading of `note` that the link subpath `text` points to (`A` or `A#B` for nested)."""
    parts = [canonical_heading(p) for p in text.split("#")]
    parts = [p for p in parts if p]
    if not parts:
        return None
    headings = note.headings
    start = 0
    min_level = 0  # each further part must be a deeper heading after the previous one
    found: Heading | None = None
    for part in parts:
        found = None
        for i in range(start, len(headings)):
            heading = headings[i]
            if heading.level > min_level and canonical_heading(heading.text) == part:
                found = heading
                start = i + 1
                min_level = heading.level
                break
        if found is None:
            return None
    return found


def block_matches(note: Note, block_id: str) -> bool:
    wanted = block_id.strip().lower()
    return any(b.id.lower() == wanted for b in note.blocks)


class Resolver:
    """Resolves links against one loaded vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._files: dict[str, str] = {}  # lower-case path -> real path (notes and attachments)
        self._by_name: dict[str, list[str]] = {}  # lower-case file name -> real paths
        self._notes_lower: set[str] = set()
        for path in vault.notes:
            self._add(path)
            self._notes_lower.add(path.lower())
        for path in vault.attachments:
            self._add(path)
        for path in getattr(vault, "unparsed", ()):  # notes that exist but could not be read
            self._add(path)
            self._notes_lower.add(path.lower())
        self._memo: dict[tuple[str, str], Resolution] = {}
        self._heading_memo: dict[tuple[str, str], Heading | None] = {}
        self._suggest_memo: dict[str, str | None] = {}
        self._choice_lists: dict[tuple[bool, bool], tuple[list[str], dict[str, str]]] = {}

    def _add(self, path: str) -> None:
        low = path.lower()
        self._files[low] = path
        self._by_name.setdefault(low.rsplit("/", 1)[-1], []).append(path)

    # --- public API -------------------------------------------------------------------------------

    def resolve_link(self, link: Link, source: Note, *, suggest: bool = True) -> Resolution:
        """Resolve a parsed link from `source`, including its heading or block.

        Resolutions are shared between calls: treat them as read-only."""
        base = self.resolve_target(link.target, source.path, suggest=suggest)
        if not base.ok or not base.is_note or (link.heading is None and link.block is None):
            return base
        target = self.vault.notes.get(base.path or "")
        if target is None:  # a note that exists but could not be parsed: nothing to check against
            return base
        heading_ok: bool | None = None
        block_ok: bool | None = None
        heading: Heading | None = None
        if link.heading is not None:
            key = (target.path, link.heading)
            if key in self._heading_memo:
                heading = self._heading_memo[key]
            else:
                heading = self._heading_memo[key] = heading_matches(target, link.heading)
            heading_ok = heading is not None
        if link.block is not None:
            block_ok = block_matches(target, link.block)
        return Resolution("ok", base.path, True, [], heading_ok, block_ok, None, heading)

    def resolve_target(self, target: str, source_path: str, *, suggest: bool = True) -> Resolution:
        """Resolve a link path (no `#subpath`) written in the note at `source_path`.

        With `suggest=False` a broken result carries no "did you mean" yet (see
        `prime_suggestions`, which finds them for many targets at once)."""
        if not target.strip():  # same-note link
            return Resolution("ok", source_path, True)
        folder = source_path.rsplit("/", 1)[0] if "/" in source_path else ""
        key = (target, folder)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._locate(target, source_path, folder)
        if suggest and found.looked_for is not None and found.suggestion is None:
            found.suggestion = self.suggest(found.looked_for)
        return found

    def note_for(self, resolution: Resolution) -> Note | None:
        if resolution.ok and resolution.is_note and resolution.path:
            return self.vault.notes.get(resolution.path)
        return None

    # --- the algorithm ------------------------------------------------------------------------------

    def _locate(self, target: str, source_path: str, folder: str) -> Resolution:
        t = target.strip().replace("\\", "/")
        if not t:
            return Resolution("ok", source_path, True)
        rooted = t.startswith("/")
        relative = t.startswith("./") or t.startswith("../") or t in (".", "..")
        if rooted:
            found = self._exact(t.lstrip("/"))
            return found or self._broken(t.lstrip("/"))
        if relative:
            joined = posixpath.normpath(posixpath.join(folder, t)) if folder else posixpath.normpath(t)
            if joined == ".." or joined.startswith("../"):
                return Resolution("broken", None, False, escapes=True)
            found = self._exact(joined)
            return found or self._broken(joined)
        found = self._exact(t)
        if found is None and folder:
            found = self._exact(posixpath.normpath(posixpath.join(folder, t)))
        if found is None:
            found = self._by_suffix(t, folder)
        return found or self._broken(t)

    def _exact(self, path: str) -> Resolution | None:
        low = path.lower()
        if not low.endswith(".md"):
            real = self._files.get(low + ".md")
            if real is not None:
                return Resolution("ok", real, True)
        real = self._files.get(low)
        if real is not None:
            return Resolution("ok", real, low in self._notes_lower)
        return None

    def _by_suffix(self, t: str, folder: str) -> Resolution | None:
        low = t.lower().rstrip("/")
        keys = [low + ".md", low] if not low.endswith(".md") else [low]
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            pool = self._by_name.get(name)
            if not pool:
                continue
            if "/" in key:
                matches = [p for p in pool if p.lower().endswith("/" + key)]
            else:
                matches = list(pool)
            if not matches:
                continue
            if len(matches) == 1:
                return Resolution("ok", matches[0], matches[0].lower() in self._notes_lower)
            local = [p for p in matches if (p.rsplit("/", 1)[0] if "/" in p else "") == folder]
            if len(local) == 1:
                return Resolution("ok", local[0], local[0].lower() in self._notes_lower)
            return Resolution("ambiguous", None, False, candidates=sorted(matches))
        return None

    def _broken(self, t: str) -> Resolution:
        return Resolution("broken", None, False, looked_for=t)

    # --- did you mean -------------------------------------------------------------------------------

    def suggest(self, target: str) -> str | None:
        """The closest existing link text for a broken target (`techniques/evasion`), or None."""
        low = target.lower()
        if low not in self._suggest_memo:
            self.prime_suggestions([target])
        return self._suggest_memo.get(low)

    def prime_suggestions(self, targets: Iterable[str]) -> None:
        """Find "did you mean" for many broken targets at once (one batched comparison)."""
        groups: dict[tuple[bool, bool], list[str]] = {}
        for target in targets:
            low = target.lower()
            if low in self._suggest_memo:
                continue
            self._suggest_memo[low] = None
            is_note = low.endswith(".md") or "." not in low.rsplit("/", 1)[-1]
            query = low[:-3] if low.endswith(".md") else low
            # Compare like with like: a bare name against note names, a path against paths.
            groups.setdefault((is_note, "/" not in query), []).append(low)
        for (is_note, by_name), lows in groups.items():
            keys, table = self._choices(is_note, by_name)
            queries = [q[:-3] if q.endswith(".md") else q for q in lows]
            for low, best in zip(lows, closest_many(queries, keys)):
                self._suggest_memo[low] = table[best] if best is not None else None

    @property
    def suggestion_memo(self) -> dict[str, str | None]:
        """Every suggestion found so far (lower-case target -> link text), to persist."""
        return self._suggest_memo

    def _choices(self, notes: bool, by_name: bool) -> tuple[list[str], dict[str, str]]:
        """(lower-case keys, key -> link text), built once per kind."""
        key = (notes, by_name)
        found = self._choice_lists.get(key)
        if found is None:
            paths = sorted(p[:-3] for p in self.vault.notes) if notes else sorted(self.vault.attachments)
            table: dict[str, str] = {}
            for p in paths:
                k = (p.rsplit("/", 1)[-1] if by_name else p).lower()
                table.setdefault(k, p)
            found = self._choice_lists[key] = (list(table), table)
        return found


_CUTOFF = 0.75  # below this similarity a suggestion misleads more than it helps


def closest_many(queries: list[str], choices: list[str]) -> list[str | None]:
    """`closest` for many queries; batched in C++ (rapidfuzz.process.cdist) when there are many."""
    if len(queries) >= 16 and choices and _process is not None:
        try:
            import numpy  # noqa: F401  (cdist returns a numpy matrix)
        except ImportError:
            numpy = None  # type: ignore[assignment]
        if numpy is not None:
            out: list[str | None] = []
            step = max(1, 1_000_000 // len(choices))  # bound the score matrix to ~4 MB
            for i in range(0, len(queries), step):
                scores = _process.cdist(
                    queries[i : i + step], choices, scorer=_fuzz.ratio,
                    score_cutoff=_CUTOFF * 100, dtype=numpy.float32, workers=-1,
                )
                best = scores.argmax(axis=1)
                for row, col in enumerate(best):
                    out.append(choices[col] if scores[row, col] > 0 else None)
            return out
    return [closest(q, choices) for q in queries]


def closest(query: str, choices: list[str]) -> str | None:
    """The choice most similar to `query` (edit-distance ratio), or None if none is close."""
    if not choices:
        return None
    if _process is not None:
        hit = _process.extractOne(query, choices, scorer=_fuzz.ratio, score_cutoff=_CUTOFF * 100)
        return hit[0] if hit else None
    close = difflib.get_close_matches(query, choices, n=1, cutoff=_CUTOFF)
    return close[0] if close else None
