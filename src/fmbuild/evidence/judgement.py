"""A note's claims judged against a record: the one evidence view of claim verdicts.

The note's *current* claims are checked against every seed the record measured, so a claim
edited after the run is judged honestly without a re-run, and the site, the compiled manual
and the readiness of a note (`records.evidence_state`) all say the same thing about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmbuild.evidence.claims import Claim, check_claim
from fmbuild.evidence.margins import margin
from fmbuild.evidence.records import Record


@dataclass(frozen=True, slots=True)
class ClaimJudgement:
    metric: str
    expected: str  # the claim as written
    measured: Any  # on the record's first seed (the one whose figures the text shows); None: not measured
    low: Any  # the range over the judged seeds (numbers only; None otherwise)
    high: Any
    worst_margin: float | None  # the smallest margin over the judged seeds (numeric claims only)
    failed_seeds: tuple[int, ...]
    seeds: tuple[int, ...]
    message: str  # the check's message on the first failing seed (or on the first seed)

    @property
    def ok(self) -> bool:
        return bool(self.seeds) and not self.failed_seeds

    @property
    def verdict(self) -> str:
        if not self.seeds:
            return "no record"
        if not self.failed_seeds:
            return "met"
        if len(self.failed_seeds) < len(self.seeds):
            return f"flaky: not met on seed {', '.join(map(str, self.failed_seeds))}"
        return "not met"


def judged_seeds(record: Record, standard: tuple[int, ...] | list[int] | None = None) -> list[int]:
    """The seeds a record's claims are judged on: those of the standard it measured (all it
    measured without a standard), or its one seed for a record from before seeds."""
    wanted = record.seeds if standard is None else standard
    return [s for s in wanted if record.metrics_of(s) is not None] or [record.seed]


def judge(claim: Claim, record: Record | None, standard: tuple[int, ...] | list[int] | None = None) -> ClaimJudgement:
    if record is None:
        return ClaimJudgement(claim.metric, claim.source, None, None, None, None, (), (), "no committed record")
    seeds = judged_seeds(record, standard)
    verdicts = [(s, check_claim(claim, record.metrics_of(s) or record.metrics)) for s in seeds]
    failed = tuple(s for s, v in verdicts if not v.ok)
    values = [v.measured for _s, v in verdicts]
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)
    margins = [margin(claim, record.metrics_of(s) or record.metrics) for s in seeds]
    worst = min(m for m in margins if m is not None) if margins and all(m is not None for m in margins) else None
    first_failed = next((v for _s, v in verdicts if not v.ok), verdicts[0][1])
    return ClaimJudgement(
        metric=claim.metric, expected=claim.source, measured=verdicts[0][1].measured,
        low=min(values) if values and numbers else None, high=max(values) if values and numbers else None,
        worst_margin=worst, failed_seeds=failed, seeds=tuple(seeds), message=first_failed.message,
    )


def judge_all(claims: list[Claim], record: Record | None,
              standard: tuple[int, ...] | list[int] | None = None) -> list[ClaimJudgement]:
    return [judge(c, record, standard) for c in claims]
