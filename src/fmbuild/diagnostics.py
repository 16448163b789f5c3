"""Diagnostics: the one shape every finding takes, and its three renderings.

A diagnostic reads `path:line:col: severity[code] message`. `path` is relative to the vault
root with POSIX separators; line and column are 1-based (0 when the finding concerns the whole
file).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Iterable

from fmbuild.terminal import printable


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# Every code a check may emit, with a one-line explanation (shown by `fmbuild check --codes`).
CODES: dict[str, str] = {
    "link-broken": "a link whose target note or file does not exist",
    "link-ambiguous": "a bare link name that more than one note bears",
    "heading-missing": "a link to a heading the target note does not have",
    "block-missing": "a link to a block id the target note does not have",
    "embed-missing": "an embed whose target does not exist",
    "frontmatter-invalid": "frontmatter that is not a YAML mapping",
    "field-missing": "a required frontmatter field is absent",
    "field-invalid": "a frontmatter field has the wrong type or value",
    "tag-unknown": "a tag outside the vocabulary in fmbuild.toml",
    "id-duplicate": "two notes share one id",
    "maturity-unearned": "maturity: verified without a passing, fresh evidence record",
    "step-invalid": "a playbook step mark (%% step ... %%) that cannot be run as written",
    "framework-id-unknown": "an ATLAS / OWASP id that the shipped reference lists do not have",
    "unsafe-html": "raw script, iframe, event handler (raw or attr_list) or javascript: URL in a note",
    "path-escape": "a symlink or link that leaves the vault",
    "encoding": "bytes that are not UTF-8",
    "file-too-large": "a file over the configured size limit",
    "file-unreadable": "a file or folder that cannot be read",
    "claim-invalid": "an evidence claim that cannot be parsed",
    "evidence-invalid": "an evidence block that names a missing module or has bad fields",
    "evidence-stale": "the committed evidence record predates a change to its module",
    "metric-unknown": "prose cites a metric the evidence record does not have",
    "log-unknown": "a log excerpt ({{log:EVENT}}) the evidence record has no line for, or a malformed one",
    "plot-unknown": "a plot embed (![[records/<module>/<plot>]]) the evidence record does not hold",
    "metric-format-invalid": "a {{evidence:m:SPEC}} format spec outside the allowed grammar or bounds",
    "edge-invalid": "a mitigates/enables/covers/applies edge to a note of the wrong type",
    "edge-deprecated": "an edge to a deprecated note",
    "control-missing": "a technique no control mitigates, or a control that mitigates nothing",
    "config-invalid": "fmbuild.toml has an error",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    path: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str

    def text(self) -> str:
        # Paths and messages quote notes (link text, titles): shown, never obeyed by a terminal.
        return f"{printable(self.path)}:{self.line}:{self.column}: {self.severity}[{self.code}] {printable(self.message)}"

    def github(self) -> str:
        # Workflow commands: properties and message have their own escaping rules.
        level = {"error": "error", "warning": "warning"}.get(self.severity, "notice")
        props = f"file={_gh_prop(self.path)},line={max(self.line, 1)},col={max(self.column, 1)}"
        props += f",title={_gh_prop(self.code)}"
        return f"::{level} {props}::{_gh_data(printable(self.message))}"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)


def error(path: str, line: int, column: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path, line, column, Severity.ERROR, code, message)


def warning(path: str, line: int, column: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path, line, column, Severity.WARNING, code, message)


def render(diagnostics: Iterable[Diagnostic], fmt: str, prefix: str = "") -> str:
    """Render diagnostics as `text`, `json` or `github`.

    `prefix` is prepended to paths in text and github output so that the paths are clickable
    from the repository root (e.g. `vault/`); JSON keeps vault-relative paths.
    """
    items = sorted(diagnostics, key=Diagnostic.sort_key)
    if fmt == "json":
        return json.dumps([d.as_dict() for d in items], indent=2, ensure_ascii=False)
    if fmt == "github":
        return "\n".join(
            Diagnostic(prefix + d.path, d.line, d.column, d.severity, d.code, d.message).github()
            for d in items
        )
    return "\n".join(
        Diagnostic(prefix + d.path, d.line, d.column, d.severity, d.code, d.message).text()
        for d in items
    )


def _gh_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(value: str) -> str:
    return _gh_data(printable(value)).replace(":", "%3A").replace(",", "%2C")
