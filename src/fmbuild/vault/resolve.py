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
    heading: Heading | None = None  # the heading the link points to, when found
    escapes: bool = False  # a relative path that climbs out of the vault
    looked_for: str | None = None  # the vault path that was looked for, when broken
    # "Did you mean" costs a fuzzy search over every file, so it is found when first asked for.
    _resolver: "Resolver | None" = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def suggestion(self) -> str | None:
        """The closest existing target, as link text (`techniques/evasion`), when broken."""
        if self.looked_for is None or self._resolver is None:
            return None
        return self._resolver.suggest(self.looked_for)


_NOT_WORD = re.compile(r"[^\w\-]+|_+")


def canonical_heading(text: str) -> str:
    """A heading as Obsidian compares it: lower case, punctuation and runs of spaces ignored."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def heading_matches(note: Note, text: str) -> Heading | None:
    """The heading of `note` that the link subpath `text` points to (`A` or `A#B` for nested)."""
    i = Anchors.of(note).nested_heading(text)
    return note.headings[i] if i is not None else None


@dataclass(slots=True)
class Anchors:
    """What links can point to inside one note: its headings as links match them
    (`canonical_heading`) with their levels, and its block ids in lower case. Plain data, so
    that a parse worker can work it out and hand it on."""

    canon: list[str]
    levels: list[int]
    blocks: set[str]
    _index: dict[str, int] | None = None  # canonical text -> first heading with it

    @classmethod
    def of(cls, note: Note) -> "Anchors":
        headings = note.headings
        return cls([canonical_heading(h.text) for h in headings], [h.level for h in headings],
                   {b.id.lower() for b in note.blocks})

    def plain(self) -> tuple[list[str], list[int], list[str]]:
        return self.canon, self.levels, sorted(self.blocks)

    @classmethod
    def from_plain(cls, data: tuple[list[str], list[int], list[str]]) -> "Anchors":
        canon, levels, blocks = data
        return cls(canon, levels, set(blocks))

    def heading(self, wanted: str) -> int | None:
        """Index of the first heading whose canonical text is `wanted` (canonical already)."""
        index = self._index
        if index is None:
            index = self._index = {}
            for i, c in enumerate(self.canon):
                index.setdefault(c, i)
        return index.get(wanted) if wanted else None

    def nested_heading(self, text: str) -> int | None:
        """Index of the heading a subpath `A#B` names: B, deeper than and after A."""
        parts = [canonical_heading(p) for p in text.split("#")]
        parts = [p for p in parts if p]
        if not parts:
            return None
        start = 0
        min_level = 0  # each further part must be a deeper heading after the previous one
        found: int | None = None
        for part in parts:
            found = None
            for i in range(start, len(self.canon)):
                if self.canon[i] == part and self.levels[i] > min_level:
                    found = i
                    start = i + 1
                    min_level = self.levels[i]
                    break
            if found is None:
                return None
        return found


class Resolver:
    """Resolves links against one loaded vault.

    Where a link path points depends only on which files the vault holds; its heading or block
    also needs the target note. `Resolver.of_files` makes a resolver from the file names alone
    (the parse workers resolve link paths before any note is loaded); anchors then need the
    vault (`vault` None: `check_anchor` cannot be used)."""

    def __init__(self, vault: Vault | None, *, notes: Iterable[str] = (), attachments: Iterable[str] = ()) -> None:
        self.vault = vault  # type: ignore[assignment]
        self._files: dict[str, str] = {}  # lower-case path -> real path (notes and attachments)
        self._by_name: dict[str, list[str]] = {}  # lower-case file name -> real paths
        self._notes_lower: set[str] = set()
        if vault is not None:
            # Notes that exist but could not be read count as notes: links to them resolve.
            notes = [*vault.notes, *getattr(vault, "unparsed", ())]
            attachments = vault.attachments
        self._note_paths: list[str] = []
        for path in notes:
            self._add(path)
            self._notes_lower.add(path.lower())
            self._note_paths.append(path)
        self._attachment_paths = list(attachments)
        for path in self._attachment_paths:
            self._add(path)
        self._global_memo: dict[str, Resolution] = {}  # targets that resolve alike from any folder
        self._memo: dict[tuple[str, str], Resolution] = {}  # (target, folder) for the others
        self._anchor_memo: dict[tuple[str, str | None, str | None], Resolution] = {}
        self._found_memo: dict[tuple[str, str | None, str | None], tuple[bool | None, bool | None]] = {}
        self._anchors: dict[str, Anchors] = {}  # note path -> what links can point to in it
        self._canon_text: dict[str, str] = {}  # link heading text -> canonical
        self._suggest_memo: dict[str, str | None] = {}
        self._choice_lists: dict[tuple[bool, bool], tuple[list[str], dict[str, str]]] = {}

    @classmethod
    def of_files(cls, notes: Iterable[str], attachments: Iterable[str]) -> "Resolver":
        """A resolver for link paths only: `notes` are every note file (parsed or not)."""
        return cls(None, notes=notes, attachments=attachments)

    def _add(self, path: str) -> None:
        low = path.lower()
        self._files[low] = path
        self._by_name.setdefault(low.rsplit("/", 1)[-1], []).append(path)

    # --- public API -------------------------------------------------------------------------------

    def resolve_link(self, link: Link, source: Note, *, suggest: bool = True) -> Resolution:
        """Resolve a parsed link from `source`, including its heading or block.

        Resolutions are shared between calls: treat them as read-only. (`suggest` is accepted
        for callers written before suggestions became lazy; it changes nothing.)"""
        base = self.resolve_target(link.target, source.path)
        if (link.heading is None and link.block is None) or base.status != "ok" or not base.is_note:
            return base
        return self.check_anchor(base.path or "", link.heading, link.block)

    def check_anchor(self, path: str, heading: str | None, block: str | None, note: Note | None = None) -> Resolution:
        """The heading or block a link names in the note at `path` (the link path resolved to
        it already). `note` is that note where the caller holds it; otherwise the vault's."""
        key = (path, heading, block)
        found = self._anchor_memo.get(key)
        if found is None:
            target = note if note is not None else self.vault.notes.get(path)
            if target is None:  # a note that exists but could not be parsed: nothing to check against
                found = Resolution("ok", path, True)
            else:
                i, block_ok = self._locate_anchor(self.anchors(target), heading, block)
                heading_ok = None if heading is None else i is not None
                found = Resolution("ok", path, True, [], heading_ok, block_ok,
                                   target.headings[i] if i is not None else None)
            self._anchor_memo[key] = found
        return found

    def anchor_found(
        self, path: str, heading: str | None, block: str | None, note: Note | None = None
    ) -> tuple[bool | None, bool | None]:
        """(heading found, block found) for a link into the note at `path`; None where the link
        names none or the note could not be parsed. Needs no more of the note than its
        `Anchors` (which `know_anchors` may have supplied)."""
        key = (path, heading, block)
        found = self._found_memo.get(key)
        if found is None:
            anchors = self._anchors.get(path)
            if anchors is None:
                target = note if note is not None else self.vault.notes.get(path)
                anchors = self.anchors(target) if target is not None else None
            if anchors is None:
                found = (None, None)
            else:
                i, block_ok = self._locate_anchor(anchors, heading, block)
                found = (None if heading is None else i is not None, block_ok)
            self._found_memo[key] = found
        return found

    def anchors(self, note: Note) -> Anchors:
        """`Anchors` of `note` (worked out once)."""
        found = self._anchors.get(note.path)
        if found is None:
            found = self._anchors[note.path] = Anchors.of(note)
        return found

    def know_anchors(self, path: str, anchors: Anchors) -> None:
        """Take the `Anchors` of the note at `path` as worked out elsewhere (a parse worker)."""
        self._anchors.setdefault(path, anchors)

    def _locate_anchor(self, anchors: Anchors, heading: str | None, block: str | None) -> tuple[int | None, bool | None]:
        i: int | None = None
        if heading is not None:
            if "#" in heading:  # nested: A#B
                i = anchors.nested_heading(heading)
            else:
                wanted = self._canon_text.get(heading)
                if wanted is None:
                    wanted = self._canon_text[heading] = canonical_heading(heading)
                i = anchors.heading(wanted)
        block_ok = None if block is None else block.strip().lower() in anchors.blocks
        return i, block_ok

    def resolve_target(self, target: str, source_path: str, *, suggest: bool = True) -> Resolution:
        """Resolve a link path (no `#subpath`) written in the note at `source_path`.

        A broken result finds its "did you mean" when `suggestion` is first read;
        `prime_suggestions` finds them for many targets at once. (`suggest` is accepted for
        callers written before suggestions became lazy; it changes nothing.)"""
        found = self._global_memo.get(target)
        if found is None:
            if not target or target.isspace():  # same-note link
                return Resolution("ok", source_path, True)
            folder = source_path.rsplit("/", 1)[0] if "/" in source_path else ""
            key = (target, folder)
            found = self._memo.get(key)
            if found is None:
                found, depends_on_folder = self._locate(target, folder)
                if depends_on_folder:
                    self._memo[key] = found
                else:
                    self._global_memo[target] = found
        return found

    # --- the algorithm ------------------------------------------------------------------------------

    def _locate(self, target: str, folder: str) -> tuple[Resolution, bool]:
        """The resolution, and whether it depends on the linking note's folder."""
        t = target.strip().replace("\\", "/")
        if t.startswith("/"):
            t = t.lstrip("/")
            return self._exact(t) or self._broken(t), False
        if t.startswith(("./", "../")) or t in (".", "..") or "/./" in t or "/../" in t:
            joined = posixpath.normpath(f"{folder}/{t}" if folder else t)
            if joined == ".." or joined.startswith("../"):
                return Resolution("broken", None, False, escapes=True), True
            return self._exact(joined) or self._broken(joined), True
        found = self._exact(t)
        if found is not None:
            return found, False
        if folder:
            found = self._exact(f"{folder}/{t}")
            if found is not None:
                return found, True
        found, several = self._by_suffix(t, folder)
        # One candidate (or none) is the same answer from every folder; a choice among several
        # depends on which folder the link is written in.
        return found or self._broken(t), several

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

    def _by_suffix(self, t: str, folder: str) -> tuple[Resolution | None, bool]:
        """Files whose path ends with `t`: (resolution or None, whether there were several)."""
        low = t.lower().rstrip("/")
        keys = [low + ".md", low] if not low.endswith(".md") else [low]
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            pool = self._by_name.get(name)
            if not pool:
                continue
            if "/" in key:
                tail = "/" + key
                matches = [p for p in pool if p.lower().endswith(tail)]
            else:
                matches = list(pool)
            if not matches:
                continue
            if len(matches) == 1:
                return Resolution("ok", matches[0], matches[0].lower() in self._notes_lower), False
            local = [p for p in matches if (p.rsplit("/", 1)[0] if "/" in p else "") == folder]
            if len(local) == 1:
                return Resolution("ok", local[0], local[0].lower() in self._notes_lower), True
            return Resolution("ambiguous", None, False, candidates=sorted(matches)), True
        return None, False

    def _broken(self, t: str) -> Resolution:
        return Resolution("broken", None, False, looked_for=t, _resolver=self)

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

    def _choices(self, notes: bool, by_name: bool) -> tuple[list[str], dict[str, str]]:
        """(lower-case keys, key -> link text), built once per kind."""
        key = (notes, by_name)
        found = self._choice_lists.get(key)
        if found is None:
            paths = sorted(p[:-3] for p in self._note_paths) if notes else sorted(self._attachment_paths)
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
