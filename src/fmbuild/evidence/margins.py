"""A claim's margin: how far its measured value is from failing, in the claim's own units.

    >= t, > t    measured - t
    <= t, < t    t - measured
    == t         -|measured - t|   (0 when it holds; how far off it is otherwise)
    != t         |measured - t|    (how far from the forbidden value)

Positive (or 0 for `>=`, `<=`, `==`) holds; a strict `>`/`<` claim with margin 0 fails. Booleans
and strings have no margin (`None`), nor does a claim whose metric is missing.
"""

from __future__ import annotations

from typing import Any

from fmbuild.evidence.claims import Claim, MissingMetric, _is_number, _TypeProblem, evaluate, lookup


def margin(claim: Claim, metrics: dict[str, Any]) -> float | None:
    """The claim's signed margin on one run's metrics; None when it has none (not numeric, missing)."""
    try:
        measured = lookup(metrics, claim.metric)
        threshold = evaluate(claim.rhs, metrics)
    except (MissingMetric, _TypeProblem):
        return None
    if not (_is_number(measured) and _is_number(threshold)):
        return None
    diff = measured - threshold
    if claim.op in (">=", ">"):
        value = diff
    elif claim.op in ("<=", "<"):
        value = -diff
    elif claim.op == "==":
        value = -abs(diff)
    else:
        value = abs(diff)
    return value + 0  # -0.0 + 0 is 0.0: a claim met exactly shows +0, not -0
