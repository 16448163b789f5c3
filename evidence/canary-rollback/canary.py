"""A canary rollout controller: route a slice of traffic to a candidate, watch it, promote or roll back.

Guards, checked on every labelled canary request once both arms have `min_samples`; a stage
passes when it has added `min_samples` canary requests without tripping one:
- accuracy: roll back when the candidate is worse than the stable model by more than `tolerance`
  with 95% confidence (difference of two proportions, normal approximation);
- per-class recall: roll back when any class with enough canary samples lost more than
  `recall_drop` of recall against the stable model (targeted poisoning hides in one class);
- disagreement: the stable model scores canary requests in shadow; roll back when the two disagree
  on more than `max_disagreement` of them (this guard needs no labels at all).
Stages ramp the canary share; passing the last stage promotes the candidate.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Guards:
    stages: tuple[int, ...] = (5, 25, 50, 100)  # percent of traffic on the candidate
    min_samples: int = 80  # labelled canary requests a stage needs before it can pass
    tolerance: float = 0.02
    recall_drop: float = 0.30
    min_class_samples: int = 8
    max_disagreement: float = 0.15


@dataclass
class Registry:
    """The serving pointer: which version answers traffic. Written atomically, history kept."""

    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)

    def point(self, version: str, reason: str, at_request: int) -> None:
        self.history.append({"version": version, "reason": reason, "at_request": at_request})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"serving": version, "history": self.history}, indent=2))
        os.replace(tmp, self.path)


@dataclass
class Outcome:
    decision: str  # promoted | rolled-back | undecided
    reason: str
    decided_at: int  # request index of the decision (stream length if undecided)
    served_by_candidate: int
    wrong_by_candidate: int
    stage_reached: int
    trace: list[tuple[int, float, float, float]]  # (request, stable acc, candidate acc, disagreement)


def bucket(request_id: int, salt: str) -> int:
    """Sticky routing: the same request id always lands in the same percentile."""
    return int(hashlib.sha256(f"{salt}:{request_id}".encode()).hexdigest()[:8], 16) % 100


def _recall(y: np.ndarray, pred: np.ndarray, cls: int) -> float:
    mask = y == cls
    return float(np.mean(pred[mask] == cls)) if mask.any() else 1.0


def check(guards: Guards, y_c: list[int], p_c: list[int], shadow: list[int], y_s: list[int], p_s: list[int]) -> str | None:
    """The reason to roll back, or None."""
    n_c, n_s = len(y_c), len(y_s)
    yc, pc, ys, ps = map(np.asarray, (y_c, p_c, y_s, p_s))
    acc_c, acc_s = float(np.mean(yc == pc)), float(np.mean(ys == ps))
    se = math.sqrt(acc_c * (1 - acc_c) / n_c + acc_s * (1 - acc_s) / n_s) or 1e-9
    if (acc_s - acc_c) - 1.645 * se > guards.tolerance:
        return f"accuracy {acc_c:.3f} vs stable {acc_s:.3f}"
    for cls in np.unique(yc):
        if np.sum(yc == cls) >= guards.min_class_samples and np.sum(ys == cls) >= guards.min_class_samples:
            drop = _recall(ys, ps, cls) - _recall(yc, pc, cls)
            if drop > guards.recall_drop:
                return f"recall of class {cls} fell by {drop:.2f}"
    disagreement = float(np.mean(np.asarray(shadow) != pc))
    if disagreement > guards.max_disagreement:
        return f"disagrees with stable on {disagreement:.1%} of canary traffic"
    return None


def rollout(
    stable: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    guards: Guards,
    registry: Registry,
    name: str,
    log: Callable[..., None],
) -> Outcome:
    stage = 0
    y_c: list[int] = []
    p_c: list[int] = []
    shadow: list[int] = []
    y_s: list[int] = []
    p_s: list[int] = []
    served = wrong = stage_start = 0
    trace: list[tuple[int, float, float, float]] = []
    stable_all, candidate_all = stable(x), candidate(x)  # batch scoring; routing below decides who answers
    registry.point(f"canary:{name}@{guards.stages[0]}%", "canary started", 0)
    for i in range(len(x)):
        if bucket(i, name) >= guards.stages[stage]:
            y_s.append(int(y[i]))
            p_s.append(int(stable_all[i]))
            continue
        served += 1
        wrong += int(candidate_all[i] != y[i])
        y_c.append(int(y[i]))
        p_c.append(int(candidate_all[i]))
        shadow.append(int(stable_all[i]))
        if len(y_c) < guards.min_samples or len(y_s) < guards.min_samples:
            continue
        if len(y_c) % 10 == 0:
            trace.append((i, float(np.mean(np.asarray(y_s) == p_s)), float(np.mean(np.asarray(y_c) == p_c)), float(np.mean(np.asarray(shadow) != p_c))))
        reason = check(guards, y_c, p_c, shadow, y_s, p_s)
        if reason is not None:
            registry.point("stable", f"rollback: {reason}", i)
            log("canary.rollback", candidate=name, request=i, stage_percent=guards.stages[stage], reason=reason, canary_samples=len(y_c))
            return Outcome("rolled-back", reason, i, served, wrong, guards.stages[stage], trace)
        if len(y_c) - stage_start < guards.min_samples:
            continue
        stage += 1
        stage_start = len(y_c)
        if stage == len(guards.stages):
            registry.point(name, "promoted: every stage passed", i)
            log("canary.promote", candidate=name, request=i, canary_samples=len(y_c))
            return Outcome("promoted", "every stage passed", i, served, wrong, 100, trace)
        registry.point(f"canary:{name}@{guards.stages[stage]}%", "stage passed", i)
        log("canary.stage", candidate=name, request=i, percent=guards.stages[stage], canary_accuracy=round(float(np.mean(np.asarray(y_c) == p_c)), 4))
    return Outcome("undecided", "traffic ended first", len(x), served, wrong, guards.stages[stage], trace)
