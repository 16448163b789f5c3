"""The incremental parse cache under `.fmbuild/`: an unchanged file is not parsed again.

The file is plain data only, never pickle: a header (magic, format version, a SHA-256 digest
of the payload) and a `marshal` payload of dicts, lists, tuples, strings and numbers. The
digest is checked before the payload is decoded, so a truncated or corrupted file is discarded
without being read; the payload names the fmbuild fingerprint (version plus a hash of the parser
sources) and the vault it describes, and a cache made by another fmbuild or for another vault
is discarded too. Every entry is rebuilt into model objects under a guard: anything of the
wrong shape makes that entry a miss. A cache can cost a re-parse, never a wrong answer or a
crash.

An entry is keyed by vault-relative path and stamped with the file's size and identity
(mtime_ns, ctime_ns, inode). Size and modification time alone can be restored by anyone
(`touch -d`, `cp -p`, an editor that keeps times): when the size and mtime match but the change
time or the inode differ, or the entry was made so soon after the file changed that a later
edit within the file system's timestamp granularity would keep every time ("racily clean", as
git calls it), the file's SHA-256 is checked against the cached note's before the entry is used.
The change time cannot be set back by a user, so an edit that restores the mtime is still seen.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import marshal
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from itertools import starmap
from pathlib import Path
from typing import Any

from fmbuild import __version__
from fmbuild.diagnostics import Diagnostic, Severity
from fmbuild.vault.model import Block, Hazard, Heading, Link, LinkKind, LogRef, MetricRef, Note, Tag, link_file_name

CACHE_DIR = ".fmbuild"
CACHE_FILE = "parse-cache.bin"
DELTA_FILE = "parse-cache.delta.bin"
LINKS_FILE = "parse-cache.links.bin"
DELTA_SHARE = 0.05  # changes beyond this share of the entries: write the whole cache again
DELTA_MIN = 64
MAGIC = b"FMBPARSE"
FORMAT = 5  # 4: entries stamped (mtime_ns, ctime_ns, inode, racy); 5: log references (`{{log:EVENT}}`)
# An entry made less than this after its file last changed is verified by content when next used.
RACY_NS = 2_000_000_000
_DIGEST = 32
_MARSHAL_VERSION = 4

# Every module that shapes a parsed note: a change to any of them makes old entries stale.
_SOURCES = (
    "parse.py", "regions.py", "frontmatter.py", "fast_yaml.py", "html.py", "tables.py", "lines.py", "model.py", "cache.py",
)


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """fmbuild's version plus a hash of the code that shapes cached notes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{__version__}/{FORMAT}".encode())
    here = Path(__file__).parent
    for name in _SOURCES:
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


# (size, mtime_ns, the note packed on its own, its body links): unchanged entries are written
# back as they are, so saving after one edit costs a copy, not a re-encoding of the whole
# vault. The body links are packed bytes, or where they lie in the links file
# (offset, length, SHA-256 digest) when the entry came from the main file.
Entry = tuple[int, int, bytes, "bytes | tuple[int, int, bytes]"]


class ParseCache:
    """Entries by path. A run that changes a few files writes only those to a small side file
    (`parse-cache.delta.bin`, tied to the generation of the main file it amends) instead of
    rewriting the whole cache: with 10,000 notes that rewrite is a tenth of a second. Once the
    changes pass `DELTA_SHARE` of the entries, the whole cache is written again.

    Body links are most of a cache's bytes and few runs read them (only for the notes a check
    looks at afresh), so the main file keeps them apart, in `parse-cache.links.bin`: a note
    reads its own slice when its links are first asked for, checked against its digest."""

    def __init__(self, path: Path, vault_root: Path) -> None:
        self.path = path
        self.delta_path = path.with_name(DELTA_FILE)
        self.links_path = path.with_name(LINKS_FILE)
        self.vault_root = str(vault_root)
        self.fingerprint = fingerprint()
        self.entries: dict[str, Entry] = {}
        self.dirty = False
        self.discarded: str | None = None  # why an existing cache file was not used
        self.generation: str | None = None  # of the main file as loaded (None: none usable)
        self.changes: dict[str, Entry | None] = {}  # since the main file was written (None: gone)
        self.links_file: _LinksFile | None = None

    @classmethod
    def for_vault(cls, cache_root: Path, vault_root: Path) -> "ParseCache":
        return cls(cache_root / CACHE_DIR / CACHE_FILE, vault_root)

    # --- reading ------------------------------------------------------------------------------------

    def load(self) -> None:
        content, self.discarded = read_plain(self.path)
        if content is None:
            return
        if not self._ours(content) or not isinstance(content.get("entries"), dict):
            self.discarded = "made by another fmbuild or for another vault"
            return
        self.entries = content["entries"]
        generation = content.get("generation")
        self.generation = generation if isinstance(generation, str) else None
        if self.generation is not None:
            self.links_file = _LinksFile(self.links_path, self.generation)
        delta, _why = read_plain(self.delta_path)  # a damaged side file only costs re-parses
        if (
            self.generation is not None
            and self._ours(delta)
            and delta.get("generation") == self.generation
            and isinstance(delta.get("changes"), dict)
        ):
            for path, entry in delta["changes"].items():
                if entry is None:
                    self.entries.pop(path, None)
                else:
                    self.entries[path] = entry
            self.changes = dict(delta["changes"])

    def _ours(self, content: Any) -> bool:
        return (
            isinstance(content, dict)
            and content.get("fingerprint") == self.fingerprint
            and content.get("vault") == self.vault_root
        )

    def get(self, path: str, size: int, stamp: tuple[int, int, int], abspath: str | None = None) -> Note | None:
        """The cached note of `path` when its file is unchanged. `stamp` is (mtime_ns, ctime_ns,
        inode); where only the mtime still matches (or the entry is racy) the content decides."""
        entry = self.entries.get(path)
        if entry is None:
            return None
        try:
            if entry[0] != size:
                return None
            known = tuple(entry[1])
            if known[0] != stamp[0]:
                return None
            verify = known[1:3] != tuple(stamp[1:3]) or bool(known[3])
            body = entry[3]
            if not isinstance(body, bytes):
                if self.links_file is None:
                    raise TypeError("links")
                offset, length, digest = body
                body = _LinksSlice(self.links_file, int(offset), int(length), bytes(digest))
            note = decode_note(path, marshal.loads(entry[2]), source=f"{self.vault_root}/{path}", body=body)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, EOFError):
            self._forget(path)  # wrong shape: never trusted, parsed again
            return None
        if verify:
            if not self._same_content(abspath or f"{self.vault_root}/{path}", note.sha256):
                return None
            # the content is what was parsed: keep the entry under the file's present identity
            # (written back only when that differs: a still-racy entry stays as it is)
            fresh = _stamp(stamp)
            if fresh != known:
                self.entries[path] = self.changes[path] = (entry[0], fresh, entry[2], entry[3])
                self.dirty = True
        return note

    @staticmethod
    def _same_content(abspath: str, sha256: str) -> bool:
        try:
            with open(abspath, "rb") as handle:
                return bool(sha256) and hashlib.sha256(handle.read()).hexdigest() == sha256
        except OSError:
            return False

    # --- writing ------------------------------------------------------------------------------------

    def put(self, path: str, size: int, stamp: tuple[int, int, int], packed: tuple[bytes, bytes] | None) -> None:
        """Remember a note packed with `pack_note` (None: forget the file). `stamp` is the
        (mtime_ns, ctime_ns, inode) the file had when it was read."""
        if packed is None:
            self._forget(path)
            return
        meta, body = packed
        self.entries[path] = self.changes[path] = (size, _stamp(stamp), meta, body)
        self.dirty = True

    def _forget(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self.changes[path] = None
            self.dirty = True

    def retain(self, paths: set[str]) -> None:
        """Forget entries for files that are gone."""
        for p in [p for p in self.entries if p not in paths]:
            self._forget(p)

    def save(self) -> None:
        """Write atomically; a cache that cannot be written is simply not written."""
        if not self.dirty and self.discarded is None:
            return
        header = {"fingerprint": self.fingerprint, "vault": self.vault_root}
        few = len(self.changes) <= max(DELTA_MIN, int(len(self.entries) * DELTA_SHARE))
        if self.generation is not None and self.discarded is None and few:
            delta = {**header, "generation": self.generation, "changes": self.changes}
            if write_plain(self.delta_path, delta):
                self.dirty = False
                return
        generation = uuid.uuid4().hex
        entries = self._write_links(generation)
        if entries is not None and write_plain(self.path, {**header, "generation": generation, "entries": entries}):
            try:  # the old side file names the old generation: it would be ignored anyway
                self.delta_path.unlink()
            except OSError:
                pass
            self.entries = entries
            self.generation = generation
            self.links_file = _LinksFile(self.links_path, generation)
            self.changes = {}
            self.dirty = False
            self.discarded = None

    def _write_links(self, generation: str) -> dict[str, Entry] | None:
        """Write every entry's body links to a new links file; the entries that point into it
        (None when it cannot be written). Links the old file holds are read from it first: an
        entry whose slice fails its digest is left out (its note is simply parsed again)."""
        chunks: list[bytes] = [MAGIC, bytes([FORMAT]), generation.encode("ascii")]
        offset = sum(len(c) for c in chunks)
        entries: dict[str, Entry] = {}
        for path, (size, mtime_ns, meta, body) in self.entries.items():
            if not isinstance(body, bytes):
                found = self.links_file.read(*body) if self.links_file is not None else None
                if found is None:
                    continue
                body = found
            chunks.append(body)
            entries[path] = (size, mtime_ns, meta, (offset, len(body), hashlib.sha256(body).digest()))
            offset += len(body)
        if not _write_atomically(self.links_path, b"".join(chunks)):
            return None
        return entries


class _LinksFile:
    """The links file of one generation, read whole when a note first needs its links."""

    def __init__(self, path: Path, generation: str) -> None:
        self.path = path
        self.generation = generation
        self._data: bytes | None = None

    def read(self, offset: int, length: int, digest: bytes) -> bytes | None:
        """One entry's slice, or None when the file is missing, of another generation, or the
        slice does not match its digest."""
        if self._data is None:
            try:
                data = self.path.read_bytes()
            except OSError:
                data = b""
            head = MAGIC + bytes([FORMAT]) + self.generation.encode("ascii")
            self._data = data if data.startswith(head) else b""
        blob = self._data[offset : offset + length]
        if len(blob) != length or hashlib.sha256(blob).digest() != digest:
            return None
        return blob


@dataclass(frozen=True, slots=True)
class _LinksSlice:
    """Where a cached note's body links lie in the links file."""

    file: _LinksFile
    offset: int
    length: int
    digest: bytes

    def read(self) -> bytes | None:
        return self.file.read(self.offset, self.length, self.digest)


# --- plain-data files ----------------------------------------------------------------------------------


def _stamp(stamp: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """The stored stamp: the identity, and whether it is racy (the file changed so shortly
    before now that another change within the same timestamp tick could keep every time)."""
    mtime_ns, ctime_ns, inode = (int(x) for x in stamp[:3])
    racy = 1 if _now_ns() - max(mtime_ns, ctime_ns) < RACY_NS else 0
    return (mtime_ns, ctime_ns, inode, racy)


def _now_ns() -> int:
    return time.time_ns()


def read_plain(path: Path) -> tuple[Any | None, str | None]:
    """(content, None), or (None, why it was discarded); (None, None) when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"unreadable: {exc.strerror}"
    header = len(MAGIC) + 1 + _DIGEST
    if len(data) < header or not data.startswith(MAGIC):
        return None, "not an fmbuild cache"
    if data[len(MAGIC)] != FORMAT:
        return None, "another cache format"
    digest = data[len(MAGIC) + 1 : header]
    payload = memoryview(data)[header:]  # (a slice of a large cache would be a copy)
    # The digest is checked first: a damaged file never reaches the decoder.
    if payload_digest(payload) != digest:
        return None, "corrupt (digest mismatch)"
    try:
        return marshal.loads(payload), None
    except (ValueError, EOFError, TypeError):
        return None, "corrupt (undecodable)"


def write_plain(path: Path, content: Any) -> bool:
    """Write `content` (plain data) atomically; False when it cannot be written."""
    try:
        payload = marshal.dumps(content, _MARSHAL_VERSION)
    except ValueError:
        return False
    return _write_atomically(path, MAGIC + bytes([FORMAT]) + payload_digest(payload) + payload)


def payload_digest(payload: bytes | memoryview) -> bytes:
    """The digest a cache file carries of its payload (SHA-256: hardware-fast on most CPUs)."""
    return hashlib.sha256(payload).digest()


def _write_atomically(path: Path, blob: bytes) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_ignore_file(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        return False
    return True


def _write_ignore_file(folder: Path) -> None:
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# fmbuild's caches: safe to delete\n*\n", encoding="utf-8")


# --- notes as plain data -----------------------------------------------------------------------------

_SEVERITIES = {s.value: s for s in Severity}
_KINDS = {k.value: k for k in LinkKind}


class _Unencodable(Exception):
    pass


def encode_note(note: Note) -> tuple[Any, ...] | None:
    """The note as plain tuples for the cache, or None when its frontmatter holds something
    marshal cannot carry faithfully (then the note is simply parsed each time)."""
    try:
        frontmatter, dates = _encode_frontmatter(note.frontmatter)
    except _Unencodable:
        return None
    i = sys.intern  # equal strings become one object: marshal then stores them once
    return (
        note.sha256,
        note.size,
        frontmatter,
        dates,
        note.field_lines,
        note.body_line,
        # Headings and blocks are read only for the notes a run checks afresh (and the
        # targets of their links): kept packed until first read.
        marshal.dumps(
            ([(h.level, h.text, h.line) for h in note.headings], [(b.id, b.line) for b in note.blocks]),
            _MARSHAL_VERSION,
        ),
        [(i(t.name), t.line, t.column, t.inline) for t in note.tags],
        _split_links(note.links, note.table_rows),
        # decoded when first read (only while deprecated notes exist): a plain list of names
        marshal.dumps(_link_names(note.links), _MARSHAL_VERSION),
        [(m.module, m.metric, m.fmt, m.line, m.column, m.raw) for m in note.metric_refs],
        [(r.module, r.event, r.count, r.line, r.column, r.raw, r.problem) for r in note.log_refs],
        [(h.kind, h.text, h.line, h.column) for h in note.hazards],
        note.table_rows,
        [(d.line, d.column, d.severity.value, d.code, d.message) for d in note.problems],
    )


def _split_links(links: list[Link], table_rows: list[int]) -> tuple[Any, Any, bytes]:
    """(property links, links on table rows, the other links packed): the first two are read
    by every run (the graph's declarations); the many others only when a rule asks. When
    property links do not come first (not as the parser writes them), all are packed."""
    count = 0
    while count < len(links) and links[count].kind is LinkKind.PROPERTY:
        count += 1
    if any(link.kind is LinkKind.PROPERTY for link in links[count:]):
        return None, (), marshal.dumps(_link_columns(links), _MARSHAL_VERSION)
    rows = set(table_rows)
    table = [link for link in links[count:] if link.line in rows]
    rest = [link for link in links[count:] if link.line not in rows] if table else links[count:]
    return _link_columns(links[:count]), _link_columns(table), marshal.dumps(_link_columns(rest), _MARSHAL_VERSION)


def _link_names(links: list[Link]) -> list[str | None]:
    """`Note.link_names`, sorted (None last), each distinct target worked out once."""
    names: set[str | None] = set()
    for target in {link.target for link in links}:
        # Targets come stripped from the parser: most need no more than their last component.
        if target and (target[0].isspace() or target[-1].isspace() or target[-1] == "/" or "\\" in target):
            names.add(link_file_name(target))
            continue
        name = target[target.rfind("/") + 1 :].lower()
        names.add(name if name != "." and name != ".." else None)
    ordered: list[str | None] = sorted(name for name in names if name is not None)
    if None in names:
        ordered.append(None)
    return ordered


def _link_columns(links: list[Link]) -> tuple[list[Any], ...] | tuple[()]:
    """Links as ten parallel lists (one per field): far fewer objects to build than one tuple
    per link, which is what makes a warm load fast."""
    if not links:
        return ()
    i = sys.intern  # equal strings become one object: marshal then stores them once
    return (
        [l.kind._value_ for l in links],  # (`.value` is a property, many times slower)
        [l.target for l in links],
        [l.heading and i(l.heading) for l in links],
        [l.block for l in links],
        [l.alias for l in links],
        [l.line for l in links],
        [l.column for l in links],
        [l.raw for l in links],
        [l.field and i(l.field) for l in links],
        [l.image for l in links],
    )


_LINKS = 8  # where `encode_note` puts the links


def pack_note(note: Note) -> tuple[bytes, bytes] | None:
    """`encode_note` as bytes: (the note without its body links, the body links), or None
    when the note cannot be cached."""
    encoded = encode_note(note)
    if encoded is None:
        return None
    props, table, body = encoded[_LINKS]
    meta = list(encoded)
    meta[_LINKS] = (props, table, b"")
    return marshal.dumps(tuple(meta), _MARSHAL_VERSION), body


def unpack_note(path: str, packed: tuple[bytes, bytes], source: str | None = None) -> Note:
    meta, body = packed
    return decode_note(path, marshal.loads(meta), source=source, body=body)



def decode_note(path: str, data: tuple[Any, ...], source: str | None = None, body: Any = None) -> Note:
    """A cached note. Its links stay packed until first read (`CachedNote`); `source` is the
    file to parse again should they turn out not to decode. `body`: the body links kept apart
    from `data` (packed bytes, or a `_LinksSlice` read when first needed)."""
    (sha256, size, frontmatter, dates, field_lines, body_line, rest, tags, links, names, refs, log_refs, hazards,
     rows, problems) = data
    if not isinstance(frontmatter, dict) or not isinstance(field_lines, dict):
        raise TypeError("frontmatter")
    if not isinstance(rest, bytes):
        raise TypeError("headings")
    if dates:
        frontmatter = _restore_dates(frontmatter, dates)
    props, table, inline = links
    if body is None:
        body = inline
    if not isinstance(body, (bytes, _LinksSlice)):
        raise TypeError("links")
    note = CachedNote(
        path=path,
        frontmatter=frontmatter,
        field_lines=field_lines,
        body_line=int(body_line),
        headings=None,  # type: ignore[arg-type]
        blocks=None,  # type: ignore[arg-type]
        tags=list(starmap(Tag, tags)),
        links=None,  # type: ignore[arg-type]
        metric_refs=list(starmap(MetricRef, refs)) if refs else [],
        log_refs=list(starmap(LogRef, log_refs)) if log_refs else [],
        hazards=list(starmap(Hazard, hazards)) if hazards else [],
        table_rows=[int(r) for r in rows] if rows else [],
        problems=[Diagnostic(path, p[0], p[1], _SEVERITIES[p[2]], p[3], p[4]) for p in problems] if problems else [],
        sha256=str(sha256),
        size=int(size),
    )
    if not isinstance(names, bytes):
        raise TypeError("link names")
    note._names = names
    note._props = (_link_objects(props) if props else []) if props is not None else None
    note._table = (_link_objects(table) if table else []) if props is not None else None
    note._packed_links = body
    note._packed_rest = rest
    note._source = source
    return note


def _decode_links(packed: bytes) -> list[Link]:
    return _link_objects(marshal.loads(packed))


def _link_objects(columns: Any) -> list[Link]:
    if not columns:
        return []
    if len(columns) != 10 or len({len(column) for column in columns}) != 1:
        raise ValueError("link columns of different lengths")
    kinds = _KINDS
    return list(map(Link, [kinds[k] for k in columns[0]], *columns[1:]))


_LINKS_SLOT = Note.links  # the slot where a Note keeps its links (a member descriptor)
_HEADINGS_SLOT = Note.headings
_BLOCKS_SLOT = Note.blocks


def _unpacked_with_rest(slot: Any, index: int) -> property:
    """A field of `Note` that a cached note decodes, with the others packed beside it, when
    first read (`CachedNote._unpack_rest`); setting it replaces the packed value."""

    def get(self: "CachedNote") -> Any:
        value = slot.__get__(self, Note)
        return value if value is not None else self._unpack_rest()[index]

    def put(self: "CachedNote", value: Any) -> None:
        slot.__set__(self, value)

    return property(get, put)


class CachedNote(Note):
    """A note read from the cache. Its links, most of its bulk, are decoded when first read:
    the rules of a warm check read the links of the few notes that changed, not of all. So
    are its headings and blocks. Anything else behaves as `Note`."""

    __slots__ = ("_names", "_props", "_table", "_packed_links", "_packed_rest", "_source")

    headings = _unpacked_with_rest(_HEADINGS_SLOT, 0)  # type: ignore[assignment]
    blocks = _unpacked_with_rest(_BLOCKS_SLOT, 1)  # type: ignore[assignment]

    def _unpack_rest(self) -> tuple[list[Heading], list[Block]]:
        """Decode headings and blocks together (those not set since)."""
        try:
            headings, blocks = marshal.loads(self._packed_rest)
            decoded = ([Heading(*h) for h in headings], [Block(*b) for b in blocks])
        except (TypeError, ValueError, IndexError, KeyError, EOFError):
            note = self._parse_again()
            decoded = (note.headings, note.blocks) if note is not None else ([], [])
        out = []
        for slot, value in zip((_HEADINGS_SLOT, _BLOCKS_SLOT), decoded):
            current = slot.__get__(self, Note)
            if current is None:
                slot.__set__(self, value)
                current = value
            out.append(current)
        self._packed_rest = b""
        return out[0], out[1]

    def _parse_again(self) -> Note | None:
        """The note parsed from its file: the truth when a cache entry turns out not to decode
        (the file's digest held, so it was written so)."""
        from fmbuild.vault.parse import parse_note

        try:
            with open(self._source or "", "rb") as fh:
                text = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return parse_note(self.path, text)

    @property  # type: ignore[override]
    def links(self) -> list[Link]:
        links = _LINKS_SLOT.__get__(self, Note)
        if links is None:
            links = self._unpack_links()
            _LINKS_SLOT.__set__(self, links)
        return links

    @links.setter
    def links(self, value: list[Link] | None) -> None:
        _LINKS_SLOT.__set__(self, value)
        if value is not None:
            self._packed_links = b""
            self._props = None
            self._table = None
            self._names = None

    @property
    def table_links(self) -> list[Link]:
        if self._table is not None and _LINKS_SLOT.__get__(self, Note) is None:
            return self._table
        return super().table_links

    @property
    def link_names(self) -> frozenset[str | None]:
        if self._names is not None and _LINKS_SLOT.__get__(self, Note) is None:
            try:
                names = frozenset(marshal.loads(self._names))
                # Written as strings and a None (the file's digest held): only the set's own
                # shape is checked here; a stray value could only fail to match a name.
                return names  # kept in the cache: the links need not be decoded for these
            except (TypeError, ValueError, EOFError):
                pass
        return super().link_names

    @property
    def property_links(self) -> list[Link]:
        if self._props is not None and _LINKS_SLOT.__get__(self, Note) is None:
            return self._props  # the body links need not be decoded for these
        return super().property_links

    def __eq__(self, other: object) -> bool:
        # A cached note equals the parsed note it stands for (dataclass equality wants one class).
        if not isinstance(other, Note):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(Note))

    __hash__ = None  # type: ignore[assignment]  # mutable, as Note

    def _unpack_links(self) -> list[Link]:
        try:
            packed = self._packed_links
            if isinstance(packed, _LinksSlice):
                packed = packed.read()
                if packed is None:
                    raise ValueError("links file")
            body = _decode_links(packed)
            if self._table:  # back into reading order
                body = sorted([*self._table, *body], key=lambda link: (link.line, link.column))
            return [*self._props, *body] if self._props is not None else body
        except (TypeError, ValueError, IndexError, KeyError, EOFError):
            pass
        note = self._parse_again()
        return note.links if note is not None else []


_PLAIN = (str, int, float, bool, type(None), bytes)


_PLAIN_TYPES = frozenset(_PLAIN)


def _flat(d: dict[Any, Any]) -> bool:
    """A mapping of string keys to plain values (a `mitigates:` entry, say)."""
    plain = _PLAIN_TYPES
    return all(type(k) is str and type(v) in plain for k, v in d.items())


def _encode_frontmatter(fm: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[tuple[Any, ...], str, str]]]:
    """Dates become ISO strings, remembered by their key path so they can be put back."""
    dates: list[tuple[tuple[Any, ...], str, str]] = []
    plain = _PLAIN_TYPES
    # The usual frontmatter: string keys, plain values, lists of strings and a date or two,
    # encoded here without a call per value.
    out: dict[str, Any] = {}
    for k, v in fm.items():
        t = type(v)
        if type(k) is not str:
            break
        if t in plain:
            out[k] = v
        elif t is _dt.date:
            dates.append(((k,), "date", v.isoformat()))
            out[k] = None
        elif t is list and all(type(x) is str or (type(x) is dict and _flat(x)) for x in v):
            out[k] = v
        else:
            break
    else:
        return out, dates
    dates = []

    def walk(value: Any, where: tuple[Any, ...]) -> Any:
        if isinstance(value, _dt.datetime):
            dates.append((where, "datetime", value.isoformat()))
            return None
        if isinstance(value, _dt.date):
            dates.append((where, "date", value.isoformat()))
            return None
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise _Unencodable
                out[k] = walk(v, where + (k,))
            return out
        if isinstance(value, list):
            return [walk(v, where + (i,)) for i, v in enumerate(value)]
        raise _Unencodable  # sets, tuples (YAML !!pairs), ...: rare, parse each time

    return walk(fm, ()), dates


def _restore_dates(fm: dict[str, Any], dates: list[tuple[tuple[Any, ...], str, str]]) -> dict[str, Any]:
    """A copy of `fm` with the dates put back. Containers on each date's path are copied so the
    cached data itself stays plain (it is written back as it is)."""
    top = dict(fm)
    for where, kind, iso in dates:
        value: Any = _dt.date.fromisoformat(iso) if kind == "date" else _dt.datetime.fromisoformat(iso)
        if len(where) == 1:  # the usual case: created, updated
            top[where[0]] = value
            continue
        holder: Any = top
        for step in where[:-1]:
            child = holder[step]
            child = dict(child) if isinstance(child, dict) else list(child)
            holder[step] = child
            holder = child
        holder[where[-1]] = value
    return top
