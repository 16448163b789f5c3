"""Frontmatter: finding the YAML block, reading it safely (libyaml's safe loader), the line of
each field, duplicate keys, and where a value sits in the raw YAML (for positions of tags and
property links)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from fmbuild.diagnostics import Diagnostic, error
from fmbuild.vault.fast_yaml import FastReader
from fmbuild.vault.lines import Lines

# libyaml's loader where PyYAML was built with it; the pure-Python one reads the same YAML.
_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A mapping key written twice: YAML keeps only the last value, silently."""

    key: str
    line: int  # 0-based, within the YAML text: the second occurrence
    column: int  # 0-based
    first_line: int  # 0-based: the first occurrence


class _FrontmatterLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, except that a date YAML cannot build (`2026-13-01`) stays text, so the
    schema rule can say which field is wrong instead of the whole block failing; and that every
    duplicate key, at any depth, is recorded (PyYAML would keep the last value without a word)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[DuplicateKey] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._note_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _note_duplicates(self, node: yaml.MappingNode) -> None:
        # Before merge keys (`<<: *base`) are flattened in: a key that overrides a merged one
        # is how merging is meant to be used, not a mistake.
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node)
                first = seen.get(key)
            except (TypeError, ValueError, yaml.YAMLError):
                continue  # an unhashable or unbuildable key: construction reports it
            mark = key_node.start_mark
            if first is None:
                seen[key] = mark.line
            else:
                self.duplicates.append(DuplicateKey(str(key), mark.line, mark.column, first))


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_FrontmatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)

# Reads the everyday subset of frontmatter without building a loader per note; it resolves and
# builds scalars with _FrontmatterLoader's own table and returns None for anything else.
_FAST = FastReader(_FrontmatterLoader)


def load_yaml(text: str) -> Any:
    """The YAML of a frontmatter block, read safely (raises yaml.YAMLError and, for values
    Python cannot build, ValueError / TypeError / OverflowError / RecursionError)."""
    return load_yaml_checked(text)[0]


def load_yaml_checked(text: str) -> tuple[Any, list[DuplicateKey]]:
    """`load_yaml`, and the duplicate keys it met (in the order they appear)."""
    fast = _FAST.read(text)
    if fast is not None:
        data, duplicates = fast
        return data, [DuplicateKey(*duplicate) for duplicate in duplicates]
    return load_yaml_checked_slow(text)


def load_yaml_checked_slow(text: str) -> tuple[Any, list[DuplicateKey]]:
    """`load_yaml_checked` through libyaml alone (the reference the fast path must match)."""
    loader = _FrontmatterLoader(text)
    try:
        data = loader.get_single_data()
        return data, sorted(loader.duplicates, key=lambda d: (d.line, d.column))
    finally:
        loader.dispose()


def duplicate_problem(path: str, duplicate: DuplicateKey, first_line: int) -> Diagnostic:
    """`duplicate key 'x' (first at line N)`, at the second occurrence (file lines)."""
    return error(
        path, first_line + duplicate.line, duplicate.column + 1, "frontmatter-invalid",
        f"duplicate key {duplicate.key!r} (first at line {first_line + duplicate.first_line}); "
        "YAML keeps only the last value",
    )


_FM_KEY = re.compile(r"^(?:\"([^\"\n]+)\"|'([^'\n]+)'|([^\s#:\-\"'][^:\n]*?|-[^\s:][^:\n]*?))[ \t]*:(?=[ \t]|$)", re.M)
FM_OPEN = re.compile(r"---[ \t]*\n")
_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)


def split_frontmatter(text: str) -> tuple[int, int, int] | None:
    """(yaml_start, yaml_end, body_start) offsets when the text opens with a frontmatter block."""
    if not FM_OPEN.match(text):
        return None
    yaml_start = text.index("\n") + 1
    close = _FM_CLOSE.search(text, yaml_start)
    if close is None:
        return None
    body_start = close.end() + 1 if close.end() < len(text) else close.end()
    return yaml_start, close.start(), body_start


def field_lines(fm_text: str, first_line: int) -> dict[str, int]:
    lines: dict[str, int] = {}
    line_no = first_line
    last = 0
    for m in _FM_KEY.finditer(fm_text):
        line_no += fm_text.count("\n", last, m.start())
        last = m.start()
        key = m.group(1) or m.group(2) or m.group(3)
        lines.setdefault(key.strip(), line_no)
    return lines


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


class FrontmatterLocator:
    """Finds where a value from a frontmatter field sits in the raw YAML, for positions."""

    def __init__(self, text: str, yaml_start: int, yaml_end: int, lines: Lines, field_lines: dict[str, int]):
        self.text = text
        self.yaml_start = yaml_start
        self.yaml_end = yaml_end
        self.lines = lines
        self.field_lines = field_lines
        self.cursor: dict[str, int] = {}

    def find(self, key: str, needle: str) -> tuple[int, int]:
        """Line and column of the next occurrence of `needle` within field `key`."""
        start = self.cursor.get(key)
        if start is None:
            line = self.field_lines.get(key)
            start = self.lines.starts[line - 1] if line else self.yaml_start
        at = self.text.find(needle, start, self.yaml_end)
        if at < 0:
            line = self.field_lines.get(key, self.lines.line(self.yaml_start) - 1)
            return line, 1
        self.cursor[key] = at + len(needle)
        return self.lines.pos(at)


def yaml_problem(path: str, exc: yaml.YAMLError, first_line: int) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = first_line + mark.line if mark is not None else first_line - 1
    col = mark.column + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    return error(path, line, col, "frontmatter-invalid", f"frontmatter is not valid YAML: {detail}")


MAX_FM_NODES = 20_000


def small_enough(value: Any) -> bool:
    """Whether the frontmatter, with YAML aliases expanded, stays under `MAX_FM_NODES` values.

    Aliases let a few lines of YAML stand for billions of values ("billion laughs"); every
    consumer walks the values, so such frontmatter is refused up front."""
    budget = MAX_FM_NODES
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return True


def yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
