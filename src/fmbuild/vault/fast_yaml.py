"""A fast reader for the everyday subset of frontmatter YAML, exact or silent.

Most frontmatter is a short block mapping: `key: plain`, `key: "quoted"`, `key:` followed by
`  - item` lines, nested mappings, one-line flow lists. Reading such a block with PyYAML costs
far more in Python-level node construction and per-call loader set-up than in libyaml itself.
`FastReader` reads that subset line by line and returns exactly what the full loader returns; for
anything outside it (or anything it is not sure of) it returns None and the caller uses the full
loader, so malformed YAML is always diagnosed by libyaml.

Scalars are never typed by hand: a plain scalar (value or key) goes through the loader's own
implicit resolver table and the loader's own constructor for the resolved tag, on a long-lived
instance of the loader class; a quoted scalar is always `str` (YAML never resolves quoted text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import yaml

# (key as text, line, column, line of the first occurrence), like frontmatter.DuplicateKey.
Duplicate = tuple[str, int, int, int]

# The tags a plain scalar may resolve to and still be read here; anything else (`<<` merge,
# `=` value, ...) goes to the full loader.
_SCALAR_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("null", "bool", "int", "float", "str", "timestamp")
)

# Characters libyaml accepts as printable, minus every YAML line break other than `\n`
# (`\r`, `\x85`, `\u2028`, `\u2029`), tabs and the BOM: text with any of them goes the slow way.
_UNSAFE_CHAR = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
# A document marker (`---` or `...` at column 0) after the first line; the first line is checked
# apart (one pattern with `\A|\n` searches several times slower).
_MARKER = re.compile(r"\n(?:---|\.\.\.)(?= |\n|\Z)")
# A content line: its indentation and its text (blank lines and whole-line comments never match).
_CONTENT_LINE = re.compile(r"^( *)([^ \n#][^\n]*)", re.MULTILINE)

# A plain scalar in block context, already cut at its comment and trimmed of spaces. It may not
# start with an indicator (`-` only when a non-space follows), may not contain `: ` or ` #`, and
# may not end with `:` (libyaml would read a mapping value or a comment there).
_PLAIN_BLOCK = re.compile(r"(?:[^-?:,\[\]{}#&*!|>'\"%@` ]|-(?=[^ ]))(?:[^ :]|:(?=[^ ])| +(?=[^ #]))*")
# A plain scalar inside a flow list: stricter still (no `:`, `#`, quotes or flow indicators).
_PLAIN_FLOW = r"(?:[^-?:,\[\]{}#&*!|>'\"%@` ]|-(?=[^ ,\[\]{}:?#'\"]))(?:[^ :?,\[\]{}#'\"]| +(?=[^ ,\[\]{}:?#'\"]))*"
# A quoted scalar with nothing to unescape: double-quoted without `\` (escapes), single-quoted
# with `''` as its only escape.
_DQ = r'"[^"\\]*"'
_SQ = r"'(?:[^']|'')*'"
_END = r"(?: *| +#.*)"  # what may follow a value on its line: spaces, or spaces and a comment
_QUOTED_VALUE = re.compile(f"({_DQ}|{_SQ}){_END}")
_FLOW_ITEM = re.compile(f" *({_DQ}|{_SQ}|{_PLAIN_FLOW}) *([,\\]])")
_FLOW_END = re.compile(_END)
# A key in quotes, followed by `:` and a space or the end of the line.
_QUOTED_KEY = re.compile(f"({_DQ}|{_SQ}):(?= |$)")

# libyaml refuses a simple key longer than 1024 characters; stay well clear of the limit.
_MAX_KEY = 1000
# Deeper than this, the full loader decides (it may raise RecursionError; we must not differ).
_MAX_DEPTH = 40


class _Fallback(Exception):
    """The text is outside the subset read here: the caller uses the full loader."""


# What the cached builders return for text outside the subset (lru_cache does not keep exceptions).
_FALLBACK: Any = object()

_EMPTY = ("empty",)


def _unquote(quoted: str) -> str:
    if quoted[0] == '"':
        return quoted[1:-1]
    return quoted[1:-1].replace("''", "'")


class FastReader:
    """Reads the common subset of frontmatter YAML as `loader_cls` would, or returns None."""

    def __init__(self, loader_cls: type, cache_size: int = 16384) -> None:
        # One long-lived loader instance: its `resolve` and its constructor table are exactly
        # the ones the full loader uses, so scalar typing cannot drift from the slow path.
        self._loader = loader_cls("")
        self._constructors: dict[Any, Callable[..., Any]] = loader_cls.yaml_constructors
        # The scalar builders are pure functions of the text and return immutable values (None,
        # bool, int, float, str, date, datetime), so their results can be shared between notes.
        self._plain = functools.lru_cache(maxsize=cache_size)(self._build_plain)
        self._key = functools.lru_cache(maxsize=cache_size)(self._build_key)
        self._value = functools.lru_cache(maxsize=cache_size)(self._build_value)
        self._line = functools.lru_cache(maxsize=cache_size)(self._build_line)

    # --- scalars -------------------------------------------------------------------------

    def _build_plain(self, text: str) -> Any:
        """A plain scalar, resolved and built by the loader itself (or _FALLBACK)."""
        if text and not _PLAIN_BLOCK.fullmatch(text):
            return _FALLBACK
        loader = self._loader
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))
        if tag not in _SCALAR_TAGS:
            return _FALLBACK
        try:
            return self._constructors[tag](loader, yaml.ScalarNode(tag, text))
        except Exception:  # noqa: BLE001 -- `0x_` resolves as int, int() refuses it: libyaml's path raises
            return _FALLBACK

    def _build_key(self, text: str) -> Any:
        """A plain mapping key as written before its `:`, or _FALLBACK."""
        if not text or len(text) > _MAX_KEY:
            return _FALLBACK  # `: x` (an empty key) or a key libyaml may refuse as too long
        if text[:1] in ("'", '"'):
            return _FALLBACK  # a quoted key is matched by _QUOTED_KEY, never split off here
        if "#" in text:
            return _FALLBACK  # `a #b: c` is the scalar `a` and a comment, not a key
        return self._plain(text)

    def _build_value(self, rest: str) -> Any:
        """What follows a key's `:` (or a `- `): ("empty",), ("scalar", value), ("list", items)."""
        text = rest.lstrip(" ")
        if not text or (text[0] == "#" and len(text) < len(rest)):  # `key:  # comment`
            return _EMPTY
        first = text[0]
        if first in "\"'":
            match = _QUOTED_VALUE.fullmatch(text)
            return ("scalar", _unquote(match.group(1))) if match else _FALLBACK
        if first == "[":
            return self._flow_list(text)
        cut = text.find(" #")
        if cut >= 0:
            text = text[:cut]
        value = self._plain(text.rstrip(" "))
        return _FALLBACK if value is _FALLBACK else ("scalar", value)

    def _flow_list(self, text: str) -> Any:
        """A one-line flow list of scalars, `[a, "b", 'c']` (no nesting, no trailing comma)."""
        items: list[Any] = []
        pos = 1
        if text[1:].lstrip(" ")[:1] == "]":
            pos = text.index("]") + 1
        else:
            while True:
                match = _FLOW_ITEM.match(text, pos)
                if match is None:
                    return _FALLBACK
                item = match.group(1)
                if item[0] in "\"'":
                    items.append(_unquote(item))
                else:
                    value = self._plain(item)
                    if value is _FALLBACK:
                        return _FALLBACK
                    items.append(value)
                pos = match.end()
                if match.group(2) == "]":
                    break
        if not _FLOW_END.fullmatch(text, pos):
            return _FALLBACK
        return ("list", tuple(items))

    # --- lines ---------------------------------------------------------------------------

    def _build_line(self, content: str) -> Any:
        """One content line, read on its own (raises _Fallback when outside the subset):
        ("entry", key, value) for `key: value`, ("item", value) for `- value`,
        ("item_entry", key, value) for `- key: value`; value as `_build_value` gives it."""
        kind = "entry"
        if content[:2] == "- ":
            content = content[2:]
            if not content or content[0] == " " or content[:2] == "- " or content == "-":
                raise _Fallback  # an empty item, a nested list, odd spacing: the full loader
            if not self._is_key_line(content):
                value = self._value(content)
                if value is _FALLBACK or value is _EMPTY:
                    raise _Fallback
                return ("item", value)
            kind = "item_entry"
        if content[0] in "\"'":
            match = _QUOTED_KEY.match(content)
            if match is None or match.end() > _MAX_KEY:
                raise _Fallback
            key, rest = _unquote(match.group(1)), content[match.end():]
        else:
            cut = content.find(": ")
            if cut < 0:
                if not content.endswith(":"):
                    raise _Fallback  # not a key line: a scalar where a key belongs
                cut = len(content) - 1
            key, rest = self._key(content[:cut]), content[cut + 1:]
            if key is _FALLBACK:
                raise _Fallback
        value = self._value(rest)
        if value is _FALLBACK:
            raise _Fallback
        return (kind, key, value)

    @staticmethod
    def _is_key_line(content: str) -> bool:
        """Whether a list item's text is `key: ...` (a mapping) rather than a scalar."""
        if content[0] in "\"'":
            return _QUOTED_KEY.match(content) is not None
        return ": " in content or content.endswith(":")

    # --- structure -----------------------------------------------------------------------

    def read(self, text: str) -> tuple[dict[Any, Any], list[Duplicate]] | None:
        """(data, duplicates) exactly as the full loader gives them, or None to use it."""
        if _UNSAFE_CHAR.search(text) or _MARKER.search(text) or (
            text[:3] in ("---", "...") and text[3:4] in ("", " ", "\n")
        ):
            return None
        # Content lines as (indentation, the line read by _build_line), in order; a duplicate
        # key names its lines by their index here (turned into line numbers only then).
        line = self._line
        try:
            lines = [(len(indent), line(content)) for indent, content in _CONTENT_LINE.findall(text)]
            if not lines or lines[0][0] != 0:
                return None  # an empty document, or one that does not open with a mapping at column 0
            found: list[tuple[str, int, int, int]] = []
            data, end = self._mapping(lines, 0, 0, found, 0)
        except _Fallback:
            return None
        if end != len(lines):
            return None
        duplicates: list[Duplicate] = []
        if found:
            starts = [match.start() for match in _CONTENT_LINE.finditer(text)]
            duplicates = sorted(
                ((key, text.count("\n", 0, starts[at]), column, text.count("\n", 0, starts[first]))
                 for key, at, column, first in found),
                key=lambda d: (d[1], d[2]),
            )
        return data, duplicates

    def _mapping(
        self, lines: list[tuple[int, Any]], at: int, indent: int,
        duplicates: list[tuple[str, int, int, int]], depth: int,
    ) -> tuple[dict[Any, Any], int]:
        """The block mapping whose keys sit at column `indent`, from line `at`."""
        if depth > _MAX_DEPTH:
            raise _Fallback
        mapping: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        count = len(lines)
        while at < count:
            column, parsed = lines[at]
            if column != indent:
                break
            if parsed[0] != "entry":
                raise _Fallback  # `- item` where a key belongs
            _kind, key, spec = parsed
            index = at
            at += 1
            if spec is _EMPTY:
                # The value is on the lines below: a deeper block, a block list at this same
                # column (YAML allows `key:` then `- item` unindented), or nothing (null).
                below, kind = lines[at] if at < count else (-1, ("",))
                if below > indent or (below == indent and kind[0] != "entry"):
                    if kind[0] == "entry":
                        value, at = self._mapping(lines, at, below, duplicates, depth + 1)
                    else:
                        value, at = self._sequence(lines, at, below, duplicates, depth + 1)
                else:
                    value = self._plain("")
            elif spec[0] == "list":
                value = list(spec[1])  # a fresh list per note: the cached items are a tuple
            else:
                value = spec[1]
            # Duplicates as frontmatter._FrontmatterLoader notes them: keys equal as Python values.
            first = seen.get(key)
            if first is None:
                seen[key] = index
            else:
                duplicates.append((str(key), index, indent, first))
            mapping[key] = value
        if at < count and lines[at][0] > indent:
            raise _Fallback  # a deeper line nothing claimed: a continued scalar, or an error
        return mapping, at

    def _sequence(
        self, lines: list[tuple[int, Any]], at: int, indent: int,
        duplicates: list[tuple[str, int, int, int]], depth: int,
    ) -> tuple[list[Any], int]:
        """The block list whose `- ` sit at column `indent`, from line `at`."""
        if depth > _MAX_DEPTH:
            raise _Fallback
        items: list[Any] = []
        count = len(lines)
        while at < count:
            column, parsed = lines[at]
            if column != indent or parsed[0] == "entry":
                break
            if parsed[0] == "item_entry":
                # `- key: value` opens a mapping whose keys sit at the column after `- `: read
                # this line as if it were indented there, then the mapping's following lines.
                lines[at] = (indent + 2, ("entry", parsed[1], parsed[2]))
                value, at = self._mapping(lines, at, indent + 2, duplicates, depth + 1)
            else:
                spec = parsed[1]
                value = list(spec[1]) if spec[0] == "list" else spec[1]
                at += 1
            items.append(value)
        if at < count and lines[at][0] > indent:
            raise _Fallback
        return items, at
