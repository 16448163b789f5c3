"""Format specs in metric references (`{{evidence:m:.3f}}`): a small allow-listed grammar.

Python's format mini-language allocates whatever width or precision it is given
(`>99999999999` asks for a 100 GB string), so a note's spec is checked before anything formats
with it: `[[fill]align][sign][z][#][0][width][grouping][.precision][type]` with a width of at
most 40, a precision of at most 12 and one of the usual types. `check` reports a bad spec at
its column; `build` and `edition cut` show the value unformatted rather than use it.
"""

from __future__ import annotations

import re

MAX_WIDTH = 40
MAX_PRECISION = 12
TYPES = "bcdeEfFgGnosxX%"

_SPEC = re.compile(
    r"(?:(?P<fill>[^{}\n])?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>\d+)?(?P<grouping>[,_])?(?:\.(?P<precision>\d+))?(?P<type>[" + re.escape(TYPES) + r"])?"
)


def spec_problem(spec: str) -> tuple[int, str] | None:
    """None for a spec fmbuild formats with; else (0-based offset in the spec, message)."""
    m = _SPEC.match(spec)
    # A lone fill character before nothing is read as the fill of no alignment: try without it.
    if m is None or m.end() != len(spec):
        end = m.end() if m else 0
        return end, (f"format spec {spec!r}: unexpected {spec[end]!r} at character {end + 1} "
                     f"(write [[fill]align][sign][#][0][width][,][.precision][type], type one of {TYPES})")
    width, precision = m.group("width"), m.group("precision")
    if width is not None and (len(width) > 3 or int(width) > MAX_WIDTH):
        return m.start("width"), f"format spec {spec!r}: width {width[:12]} is over {MAX_WIDTH}"
    if precision is not None and (len(precision) > 3 or int(precision) > MAX_PRECISION):
        return m.start("precision"), f"format spec {spec!r}: precision {precision[:12]} is over {MAX_PRECISION}"
    return None


def safe_spec(spec: str | None) -> str | None:
    """The spec if it is within the grammar and its bounds, else None (format without it)."""
    if not spec or spec_problem(spec) is not None:
        return None
    return spec
