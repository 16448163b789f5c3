"""A drift monitor for the model's inputs: one ECS event per production window.

For each window the monitor runs a two-sample Kolmogorov-Smirnov test per feature against the
training data and reports the share of features that moved (p below 0.01 after Bonferroni
correction), plus the largest KS statistic. The monitor only measures; the SIEM rule decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

SHIFTS = ("brightness", "noise", "class-prior", "dimming")


@dataclass(frozen=True)
class Window:
    index: int
    shift: str  # "none" or one of SHIFTS
    x: np.ndarray


def windows(pool: np.ndarray, labels: np.ndarray, rng: np.random.Generator, clean: int, drifted: int, size: int) -> list[Window]:
    out = [Window(i, "none", pool[rng.choice(len(pool), size, replace=False)]) for i in range(clean)]
    for j in range(drifted):
        shift = SHIFTS[j % len(SHIFTS)]
        x = pool[rng.choice(len(pool), size, replace=False)].copy()
        if shift == "brightness":  # a sensor recalibrated upstream
            x = np.clip(x + 4.0, 0, 16)
        elif shift == "noise":  # a noisy new camera
            x = np.clip(x + rng.normal(0, 3.0, x.shape), 0, 16)
        elif shift == "class-prior":  # only 0, 1 and 7: per-feature tests barely see a change of class mix
            idx = np.flatnonzero(np.isin(labels, [0, 1, 7]))
            x = pool[rng.choice(idx, size, replace=True)]
        elif shift == "dimming":  # a display pipeline that dims every pixel by 15%
            x = np.clip(x * 0.85, 0, 16)
        out.append(Window(clean + j, shift, x))
    return out


def score(reference: np.ndarray, window: np.ndarray, alpha: float = 0.01) -> dict[str, Any]:
    live = [j for j in range(reference.shape[1]) if reference[:, j].std() > 0]
    p_values, stats = [], []
    for j in live:
        result = ks_2samp(reference[:, j], window[:, j])
        p_values.append(result.pvalue)
        stats.append(result.statistic)
    moved = sum(p < alpha / len(live) for p in p_values)
    return {"share_features": moved / len(live), "max_ks": float(max(stats)), "features_tested": len(live)}
