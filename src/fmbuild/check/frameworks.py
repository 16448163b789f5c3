"""Framework IDs in frontmatter: well-formed, of the right kind, and in the shipped lists.

`atlas` holds MITRE ATLAS technique IDs (`AML.T0043`, `AML.T0043.003`), `atlas_mitigations`
ATLAS mitigation IDs (`AML.M0014`), `owasp_llm` OWASP LLM Top 10 IDs (`LLM01`…`LLM10` or
`LLM01:2025` for the 2025 edition, `LLM01:2026`…`LLM10:2026` for the renumbered 2026 one) and
`owasp_ml` OWASP ML Top 10 IDs (`ML01`…`ML10`). An ID of the right shape that the shipped list
lacks is reported with the list's version, so a stale list is visible as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from fmbuild import frameworks
from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error
from fmbuild.vault.model import Note


@dataclass(frozen=True)
class IdField:
    name: str
    framework: str  # key in fmbuild.frameworks
    kind: str  # entry kind the field holds
    shape: re.Pattern[str]
    example: str


FIELDS = (
    IdField("atlas", frameworks.ATLAS, "technique", re.compile(r"AML\.T\d{4}(?:\.\d{3})?"), "AML.T0043 or AML.T0043.003"),
    IdField("atlas_mitigations", frameworks.ATLAS, "mitigation", re.compile(r"AML\.M\d{4}"), "AML.M0014"),
    IdField("owasp_llm", frameworks.OWASP_LLM, "risk", re.compile(r"LLM(?:0[1-9]|10)(?::\d{4})?"),
            "LLM01 or LLM01:2025 (2025 edition), LLM01:2026 (2026 edition)"),
    IdField("owasp_ml", frameworks.OWASP_ML, "risk", re.compile(r"ML(?:0[1-9]|10)(?::\d{4})?"), "ML05"),
)

_FIELD_FOR_KIND = {
    (frameworks.ATLAS, "technique"): "atlas",
    (frameworks.ATLAS, "mitigation"): "atlas_mitigations",
    (frameworks.OWASP_LLM, "risk"): "owasp_llm",
    (frameworks.OWASP_LLM_2026, "risk"): "owasp_llm",
    (frameworks.OWASP_ML, "risk"): "owasp_ml",
}


@rule("framework-ids")
def check_framework_ids(ctx: CheckContext) -> Iterator[Diagnostic]:
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        for spec in FIELDS:
            if spec.name in note.frontmatter:
                yield from _check_field(note, spec, note.frontmatter[spec.name])


def _check_field(note: Note, spec: IdField, value: Any) -> Iterator[Diagnostic]:
    line = note.line_of(spec.name)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        yield error(note.path, line, 1, "field-invalid",
                    f"{spec.name}: expected an ID or a list of IDs ({spec.example}), got {_kind(value)}")
        return
    for item in items:
        if not isinstance(item, str):
            yield error(note.path, line, 1, "field-invalid",
                        f"{spec.name}: {item!r} is not an ID (write it as {spec.example})")
            continue
        raw = item.strip()
        entry = frameworks.lookup(raw) if raw == raw.upper() else None
        if entry is not None and entry.kind != spec.kind:
            yield error(note.path, line, 1, "field-invalid", _kind_message(spec, raw, entry))
            continue
        if not spec.shape.fullmatch(raw.upper()) or raw != raw.upper():
            yield error(note.path, line, 1, "field-invalid", _shape_message(spec, raw))
            continue
        fw = frameworks.frameworks()[spec.framework]
        if entry is None:
            editions = fw.version
            if spec.framework == frameworks.OWASP_LLM:  # the field holds both shipped editions
                editions += f" or {frameworks.frameworks()[frameworks.OWASP_LLM_2026].version}"
            message = f"{spec.name}: {raw} is not in {fw.title} {editions}"
            close = frameworks.suggest(raw)
            if close:
                message += f"; did you mean {close[0].id} ({close[0].name})?"
            yield error(note.path, line, 1, "framework-id-unknown", message)


def _kind_message(spec: IdField, raw: str, entry: frameworks.Entry) -> str:
    home = _FIELD_FOR_KIND.get((entry.framework, entry.kind))
    where = f"; list it under {home}" if home else ""
    if entry.framework != spec.framework:
        title = frameworks.frameworks()[entry.framework].title
        return f"{spec.name}: {raw} ({entry.name}) is an ID of another framework ({title}){where}"
    return f"{spec.name}: {raw} is a {entry.kind} ({entry.name}), not a {spec.kind}{where}"


def _shape_message(spec: IdField, raw: str) -> str:
    other = frameworks.framework_of(raw)
    if other is not None and other != spec.framework and _FIELD_FOR_KIND.get((other, spec.kind)) != spec.name:
        return f"{spec.name}: {raw} is an ID of another framework ({other}); this field holds {spec.example}"
    if raw.upper() != raw and spec.shape.fullmatch(raw.upper()):
        return f"{spec.name}: write {raw!r} in capitals: {raw.upper()}"
    return f"{spec.name}: {raw!r} is not a well-formed ID (expected {spec.example})"


def _kind(value: Any) -> str:
    return {dict: "a mapping", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
