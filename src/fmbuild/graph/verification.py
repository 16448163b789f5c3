"""Whether a note's evidence is verified: its module's committed record passes, its current
claims hold against the recorded metrics, and the record is fresh.

`fmbuild.evidence.records.evidence_state` decides. A plain Obsidian vault (no fmbuild.toml)
has no evidence records; there a note counts as verified iff its `maturity` is `verified`, and
the verdict says which basis it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Note


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    status: str | None  # 'passing' | 'failing' | 'stale' | 'none' (records), None (maturity basis)
    detail: str | None  # the records' one-line explanation
    basis: str  # 'record' | 'maturity'


def evidence_verdict(config: Config | None, note: Note) -> Verdict:
    if config is None:
        return Verdict(note.maturity == "verified", None, None, "maturity")
    from fmbuild.evidence.records import evidence_state

    state, detail = evidence_state(config, note)
    return Verdict(state == "passing", state, detail, "record")
