"""The shipped framework reference lists and the look-ups over them.

Four lists ship as package data (`frameworks/data/*.json`), each with the framework version it
was read from: MITRE ATLAS (tactics, techniques, sub-techniques, mitigations), the OWASP Top 10
for LLM Applications 2025 and 2026 (renumbered between the two) and the OWASP Machine Learning
Security Top 10 2023. They are loaded once per process.

The two OWASP LLM editions never share an ID: a 2026 entry's canonical ID carries its year
(`LLM03:2026`, Excessive Agency), while `LLM06` and `LLM06:2025` name the 2025 entry (Excessive
Agency there too), as the notes written before 2026 cite it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

ATLAS = "atlas"
OWASP_LLM = "owasp-llm"
OWASP_LLM_2026 = "owasp-llm-2026"
OWASP_ML = "owasp-ml"

# framework key -> data file under frameworks/data/
DATA_FILES: dict[str, str] = {
    ATLAS: "atlas.json",
    OWASP_LLM: "owasp-llm-2025.json",
    OWASP_LLM_2026: "owasp-llm-2026.json",
    OWASP_ML: "owasp-ml-2023.json",
}

KINDS = ("technique", "mitigation", "tactic", "risk")

# ID shapes. OWASP IDs may carry their list's year ('LLM01:2025'), as OWASP writes them.
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (ATLAS, re.compile(r"AML\.(?:TA\d{4}|T\d{4}(?:\.\d{3})?|M\d{4})")),
    (OWASP_LLM_2026, re.compile(r"LLM\d{2}:2026")),  # before the 2025 shape, which takes any year
    (OWASP_LLM, re.compile(r"LLM\d{2}(?::\d{4})?")),
    (OWASP_ML, re.compile(r"ML\d{2}(?::\d{4})?")),
)
_YEAR_SUFFIX = re.compile(r"^(?P<id>(?:LLM|ML)\d{2}):(?P<year>\d{4})$")


class ReferenceDataError(RuntimeError):
    """A shipped data file is missing or malformed: a packaging bug, not a user error."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str  # canonical: 'AML.T0043', 'AML.T0043.003', 'AML.M0014', 'AML.TA0001', 'LLM01', 'LLM01:2026', 'ML05'
    name: str
    framework: str  # 'atlas' | 'owasp-llm' | 'owasp-llm-2026' | 'owasp-ml'
    kind: str  # 'technique' | 'mitigation' | 'tactic' | 'risk'
    tactics: tuple[str, ...]  # ATLAS tactic IDs (a sub-technique inherits its parent's)
    url: str
    parent: str | None  # the technique a sub-technique belongs to

    @property
    def label(self) -> str:
        return f"{self.id} {self.name}"


@dataclass(frozen=True, slots=True)
class Framework:
    key: str
    title: str  # 'MITRE ATLAS'
    version: str  # the release the list was read from
    source: str  # where it was read from
    entries: dict[str, Entry]


def atlas_url(entry_id: str, kind: str) -> str:
    folder = {"technique": "techniques", "mitigation": "mitigations", "tactic": "tactics"}[kind]
    return f"https://atlas.mitre.org/{folder}/{entry_id}"


def _load_file(key: str) -> Framework:
    name = DATA_FILES[key]
    try:
        raw = resources.files("fmbuild.frameworks").joinpath("data", name).read_text(encoding="utf-8")
        data: Any = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ReferenceDataError(f"fmbuild.frameworks: cannot read data/{name}: {exc}") from None
    try:
        entries: dict[str, Entry] = {}
        raw_entries = {e["id"]: e for e in data["entries"]}
        for item in data["entries"]:
            tactics = list(item.get("tactics") or [])
            parent = item.get("parent")
            if parent and not tactics:  # sub-techniques list no tactics of their own
                tactics = list(raw_entries[parent].get("tactics") or [])
            if item["kind"] not in KINDS:
                raise ValueError(f"unknown kind {item['kind']!r}")
            entries[item["id"]] = Entry(
                id=item["id"],
                name=item["name"],
                framework=key,
                kind=item["kind"],
                tactics=tuple(tactics),
                url=item["url"],
                parent=parent,
            )
        return Framework(key, data["title"], str(data["version"]), data["source"], entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceDataError(f"fmbuild.frameworks: data/{name} is malformed: {exc!r}") from None


@cache
def frameworks() -> dict[str, Framework]:
    """Every shipped list, by framework key, loaded once."""
    return {key: _load_file(key) for key in DATA_FILES}


def versions() -> dict[str, str]:
    """{'atlas': '5.6.0', 'owasp-llm': '2025', 'owasp-llm-2026': '2026', 'owasp-ml': '2023'}: the
    release each list was read from."""
    return {key: fw.version for key, fw in frameworks().items()}


def normalize_id(raw: str) -> str:
    """Canonical spelling of an ID as written in a note: trimmed, upper-case, and without an
    OWASP year suffix (`LLM01:2025` -> `LLM01`). A suffix naming another year than the shipped
    list is kept, so that the ID does not resolve against the wrong edition."""
    value = raw.strip().upper()
    match = _YEAR_SUFFIX.match(value)
    if match:
        key = OWASP_LLM if value.startswith("LLM") else OWASP_ML
        if match["year"] == frameworks()[key].version:
            return match["id"]
    return value


def framework_of(raw: str) -> str | None:
    """The framework an ID belongs to by its shape (not whether it exists): 'atlas',
    'owasp-llm', 'owasp-ml', or None."""
    value = raw.strip().upper()
    for key, pattern in _SHAPES:
        if pattern.fullmatch(value):
            return key
    return None


def lookup(raw: str) -> Entry | None:
    """The shipped entry for an ID, or None when the lists do not have it."""
    if not isinstance(raw, str):
        return None
    key = framework_of(raw)
    if key is None:
        return None
    return frameworks()[key].entries.get(normalize_id(raw))


def entries(framework: str | None = None, kind: str | None = None) -> Iterator[Entry]:
    """Every entry, in the order of the source lists, optionally of one framework and kind."""
    for key, fw in frameworks().items():
        if framework is not None and key != framework:
            continue
        for entry in fw.entries.values():
            if kind is None or entry.kind == kind:
                yield entry


def suggest(raw: str, limit: int = 3) -> list[Entry]:
    """Entries close to an unknown ID, for 'did you mean' messages: same framework, nearest
    spelling first (a mistyped digit, a sub-technique whose parent exists)."""
    import difflib

    key = framework_of(raw) or _guess_framework(raw)
    if key is None:
        return []
    pool = frameworks()[key].entries
    value = normalize_id(raw)
    names = difflib.get_close_matches(value, list(pool), n=limit, cutoff=0.6)
    return [pool[n] for n in names]


def _guess_framework(raw: str) -> str | None:
    value = raw.strip().upper()
    if value.startswith("AML"):
        return ATLAS
    if value.startswith("LLM"):
        return OWASP_LLM_2026 if value.endswith(":2026") else OWASP_LLM
    if value.startswith("ML"):
        return OWASP_ML
    return None
