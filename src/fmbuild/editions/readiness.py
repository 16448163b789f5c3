"""Whether the manual may be frozen: `check` has no errors and every note's evidence stands.

A note with an evidence block stands when its module's committed record passed at full scale,
its current claims hold against the recorded metrics, and the module has not changed since
(`fmbuild.evidence.records.evidence_state`). Anything else is named, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fmbuild.diagnostics import Diagnostic, Severity
from fmbuild.evidence.records import evidence_state

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault
    from fmbuild.vault.resolve import Resolver


@dataclass(frozen=True, slots=True)
class EvidenceStanding:
    path: str  # vault-relative note path
    state: str  # passing | failing | stale | none
    detail: str


@dataclass
class Readiness:
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: int = 0
    standings: dict[str, EvidenceStanding] = field(default_factory=dict)  # notes with an evidence block

    @property
    def unverified(self) -> list[EvidenceStanding]:
        return [s for s in self.standings.values() if s.state != "passing"]


def assess(config: Config, vault: Vault, resolver: Resolver) -> Readiness:
    from fmbuild.check import run_checks

    ready = Readiness()
    for diagnostic in run_checks(vault, config, resolver):
        if diagnostic.severity is Severity.ERROR:
            ready.errors.append(diagnostic)
        elif diagnostic.severity is Severity.WARNING:
            ready.warnings += 1
    for path in sorted(vault.notes):
        note = vault.notes[path]
        if note.evidence is None:
            if note.type in ("playbook", "command-sheet"):
                from fmbuild.playbooks.state import playbook_state

                state, detail, _ = playbook_state(config, path)
                if state != "none" or "no committed record" in detail:
                    ready.standings[path] = EvidenceStanding(path, state, detail)
            continue
        state, detail = evidence_state(config, note)
        ready.standings[path] = EvidenceStanding(path, state, detail)
    return ready
