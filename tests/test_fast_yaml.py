"""The fast frontmatter reader returns exactly what libyaml's loader returns, or steps aside.

`load_yaml_checked` reads the everyday subset of frontmatter itself (vault/fast_yaml.py) and hands
everything else to `load_yaml_checked_slow` (libyaml). These tests generate frontmatter full of
YAML 1.1 traps and assert that both give the same data (types, values, key order), the same
duplicate keys, or the same exception."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmbuild.vault import frontmatter
from fmbuild.vault.frontmatter import load_yaml_checked, load_yaml_checked_slow


def _same(a: Any, b: Any) -> bool:
    """Equal values of the very same types, all the way down (NaN equals NaN, key order counts)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return (
            len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b))
            and all(_same(a[x], b[y]) for x, y in zip(a, b))
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, datetime.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def _outcome(load: Any, text: str) -> tuple[Any, ...]:
    try:
        data, duplicates = load(text)
    except Exception as exc:  # noqa: BLE001 -- the exception itself must match too
        return ("raised", type(exc), str(exc))
    return ("read", data, duplicates)


def assert_same_as_libyaml(text: str) -> None:
    fast, slow = _outcome(load_yaml_checked, text), _outcome(load_yaml_checked_slow, text)
    assert fast[0] == slow[0], (text, fast, slow)
    if fast[0] == "raised":
        assert fast[1:] == slow[1:], text
    else:
        assert _same(fast[1], slow[1]), (text, fast[1], slow[1])
        assert fast[2] == slow[2], (text, fast[2], slow[2])


def takes_fast_path(text: str) -> bool:
    return frontmatter._FAST.read(text) is not None


# --- a grammar of frontmatter full of traps -------------------------------------------------

# Plain scalars that are valid YAML but easy to type wrongly (YAML 1.1 is full of them).
TRICKY = [
    # booleans, and the ones YAML 1.1 does not have
    "yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n", "Y", "N", "true", "False", "TRUE",
    # nulls
    "null", "Null", "NULL", "~", "nil", "None",
    # ints, floats, and strings that look like them
    "0", "-0", "+1", "007", "08", "0x1F", "0x_", "0o17", "0b101", "0b", "1_000", "1__0", "1:30",
    "-1:30", "190:20:30", "1e3", "1.5e3", "1.0e+3", "6.8523015e+5", ".5", "+.5", "3.", "1.2.3",
    ".inf", "-.Inf", "+.INF", ".NaN", ".nan", "NaN", "190:20:30.15", "0.",
    # dates and datetimes, valid and not
    "2026-01-15", "2026-13-01", "2026-02-30", "2026-1-5", "2026-01-15 10:20:30",
    "2026-01-15T10:20:30Z", "2026-01-15t10:20:30.123+05:30", "2026-01-15 10:20:30 -5",
    "2026-01-15T25:00:00", "1999-12-31 23:59:59.999999999", "0000-01-01",
    # strings with colons, hashes, quotes and indicators where plain text may hold them
    "a:b", "a#b", "-a", "a,b", "a]", "a}", "a [b]", "http://x.y/z?q=1#frag", "a 'b' c", 'a "b" c',
    "it's", "x\\y", "a  b", "a&b", "a*b!", "é", "naïve ünïcode", "日本", "a\u00a0b", "k-", "-",
]
# Text that is not a plain scalar, or not valid YAML at all, in some positions.
STRANGE = [
    "", "a: b", "a:", "a #b", "#a", "- a", "?a", "? a", ":a", "@a", "`a", "%a", "&a", "*a", "!a",
    "!!str a", "|", ">", "[a", "]a", "{a", "}a", ",a", "<<", "=", "---", "...", "--- a", "a\tb",
    "[[notes/a]]", "[[a|b]]", "#tag/x", "a\rb", "a\u2028b", "\ufeffa",
]
ALPHABET = "ab 0129-_.:#'\"[]{},&*!|>?%@`~+\\/xyéT"


def _render(text: str, style: str) -> str:
    if style == "double":
        return f'"{text}"'
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    return text


POOLS = st.sampled_from(["tricky"] * 10 + ["random", "strange"])
STYLES = st.sampled_from(["plain", "plain", "double", "single"])
RANDOM_STYLES = st.sampled_from(["plain", "double", "single", "single"])


@st.composite
def scalar(draw: st.DrawFn) -> str:
    """Mostly tricky-but-valid scalars, in any style; now and then random or strange text."""
    pool = draw(POOLS)
    if pool == "random":
        return _render(draw(st.text(alphabet=ALPHABET, max_size=10)), draw(RANDOM_STYLES))
    return _render(draw(st.sampled_from(TRICKY if pool == "tricky" else STRANGE)), draw(STYLES))


KEYS = [
    "title", "tags", "id", "a", "b", "a.b", "a b", "on", "yes", "No", "y", "1", "01", "0x1", "1:30",
    "~", "null", "true", "1.0", ".nan", "2026-01-01", "2026-13-01", "-k", "k-", "'q'", '"q"', "'1'",
    "k#c", "日本",
]
KEY_POOLS = st.sampled_from(["plain"] * 8 + ["any"])


@st.composite
def key(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(KEYS)) if draw(KEY_POOLS) == "plain" else draw(scalar())


@st.composite
def flow_list(draw: st.DrawFn) -> str:
    items = draw(st.lists(scalar(), max_size=4))
    comma = draw(st.sampled_from([", ", ",", " , "]))
    inner = comma.join(items)
    shape = draw(st.sampled_from(["[{}]"] * 4 + ["[ {} ]", "[{}]  # c", "[{},]", "[{}]x"]))
    return shape.format(inner)


trail = st.sampled_from([""] * 8 + [" ", "  ", " # c", "  #c: d", "#c"])
blank_or_comment = st.sampled_from(["", "  ", "# note", "  # note", "    #"])


@st.composite
def mapping_lines(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    kinds = ["scalar", "scalar", "empty", "flow"] + (["map", "list", "list"] if depth < 3 else [])
    for _ in range(draw(st.integers(1, 4))):
        k = draw(key())
        kind = draw(st.sampled_from(kinds))
        sep = draw(st.sampled_from([" ", " ", "  "]))
        if kind == "scalar":
            lines.append(f"{pad}{k}:{sep}{draw(scalar())}{draw(trail)}")
        elif kind == "flow":
            lines.append(f"{pad}{k}:{sep}{draw(flow_list())}")
        elif kind == "empty":
            lines.append(f"{pad}{k}:{draw(trail)}")
        elif kind == "map":
            lines.append(f"{pad}{k}:{draw(trail)}")
            lines += draw(mapping_lines(indent + draw(st.sampled_from([2, 2, 1, 4])), depth + 1))
        else:  # a block list, at the key's column or indented
            lines.append(f"{pad}{k}:")
            lines += draw(list_lines(indent + draw(st.sampled_from([0, 2])), depth + 1))
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(blank_or_comment))
    return lines


@st.composite
def list_lines(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["scalar", "scalar", "flow", "map"] if depth < 3 else ["scalar"]))
        if kind == "scalar":
            lines.append(f"{pad}- {draw(scalar())}{draw(trail)}")
        elif kind == "flow":
            lines.append(f"{pad}- {draw(flow_list())}")
        else:  # `- key: value`, then more keys at the column after `- `
            first, *rest = draw(mapping_lines(indent + 2, depth + 1))
            lines.append(f"{pad}- {first[indent + 2:]}")
            lines += rest
    return lines


@st.composite
def frontmatter_text(draw: st.DrawFn) -> str:
    lines = draw(mapping_lines(0, 0))
    if draw(st.integers(0, 3)) == 0:  # now and then a line that breaks the shape
        at = draw(st.integers(0, len(lines)))
        noise = draw(st.one_of(
            st.builds(lambda n, t: " " * n + t, st.integers(0, 5), st.text(alphabet=ALPHABET, max_size=8)),
            st.sampled_from(["- x", "  - x", "x", "  continued", "---", "...", "%YAML 1.1", "\tk: v",
                             "k: |", "  body", "k: &a 1", "j: *a", "? k", ": v", "k: {a: 1}"]),
        ))
        lines.insert(at, noise)
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


# --- the differential tests -----------------------------------------------------------------

@settings(max_examples=600, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frontmatter_text())
def test_generated_frontmatter_reads_as_libyaml_reads_it(text: str) -> None:
    assert_same_as_libyaml(text)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.text(alphabet=ALPHABET + "\n\n\n    ", max_size=60))
def test_arbitrary_text_reads_or_fails_as_libyaml_does(text: str) -> None:
    assert_same_as_libyaml(text)


@pytest.mark.parametrize("value", TRICKY + STRANGE)
@pytest.mark.parametrize("shape", ["k: {}\n", "{}: v\n", "k:\n  - {}\n", "k: [{}]\n", "- {}\n"])
def test_each_tricky_scalar_in_each_position(value: str, shape: str) -> None:
    for style in ("plain", "double", "single"):
        assert_same_as_libyaml(shape.format(_render(value, style)))


def test_duplicates_at_every_depth_are_the_same_records() -> None:
    text = (
        "a: 1\non: x\ntrue: y\nitems:\n- k: 1\n  k: 2\n  n:\n    1: a\n    0x1: b\n"
        "- k: 3\n1: c\n'1': d\na: 4\n"
    )
    assert takes_fast_path(text)
    data, duplicates = load_yaml_checked(text)
    assert duplicates == load_yaml_checked_slow(text)[1]
    assert [(d.key, d.line, d.column, d.first_line) for d in duplicates] == [
        ("True", 2, 0, 1), ("k", 5, 2, 4), ("1", 8, 4, 7), ("1", 10, 0, 1), ("a", 12, 0, 0),
    ]  # `on`, `true` and `1` are one key to Python (True == 1); the first spelling stays
    assert data == {"a": 4, True: "c", "items": [{"k": 2, "n": {1: "b"}}, {"k": 3}], "1": "d"}
    assert list(data) == ["a", True, "items", "1"] and type(list(data)[1]) is bool


# --- what takes the fast path, and what does not ---------------------------------------------

TYPICAL = """\
title: "Firewall Backdoor 04759"
id: fm-00001297
tags:
  - type/pattern
  - source/lab
maturity: reviewed   # trailing comment
created: 2026-01-15
updated: 2026-02-14T10:20:30Z
chapter: 13
atlas: [AML.T0020, "AML.T0043"]
mitigates:
  - technique: "[[techniques/sandbox-shadow-02220]]"
    use: 'blocks the path: it''s measured'
evidence:
  module: evidence/evasion-pgd
  claims:
    pgd.accuracy: "<= 0.30"
aliases:
- Firewall
draft: yes
on: 1:30
bad_date: 2026-13-01
"""


def test_typical_frontmatter_takes_the_fast_path_and_matches() -> None:
    assert takes_fast_path(TYPICAL)
    assert_same_as_libyaml(TYPICAL)
    data, _ = load_yaml_checked(TYPICAL)
    assert data["created"] == datetime.date(2026, 1, 15)
    assert data[True] == 90 and data["draft"] is True and data["bad_date"] == "2026-13-01"


@pytest.mark.parametrize("text", [
    "k: |\n  block\n",  # block scalars
    "k: >\n  folded\n",
    "k: &a 1\nj: *a\n",  # anchors and aliases
    "k: !!str 1\n",  # tags
    "k: {a: 1}\n",  # flow mappings
    "k: [a, [b]]\n",  # nested flow lists
    "k: [a,\n  b]\n",  # flow lists over several lines
    "k: a\n  continued\n",  # continued plain scalars
    'k: "a\\tb"\n',  # escapes
    'k: "a\n  b"\n',  # quoted scalars over several lines
    "k:\tv\n",  # tabs
    "k: v\r\n",  # carriage returns
    "? complex\n: key\n",  # complex keys
    "<<: {a: 1}\n",  # merge keys
    "%YAML 1.1\n---\nk: v\n",  # directives and document markers
    "k: v\n...\n",
    "  k: v\n",  # a mapping that does not start at column 0
    "- a\n- b\n",  # not a mapping
    "k:\n- - a\n",  # nested lists
    "k:\n  -\n    a\n",  # an item on the next line
    "key  : v\n",  # space before the colon
    "k: a: b\n",  # invalid: a mapping value where a scalar is
    "k: v\n - x\n",  # invalid: odd indentation
    "# only a comment\n",  # no mapping at all
])
def test_what_falls_back_to_libyaml(text: str) -> None:
    assert not takes_fast_path(text)
    assert_same_as_libyaml(text)
