"""Streams, monitors and detectors of the concept-drift module (importable for the tests)."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]


def agrawal(function: int, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples of river's Agrawal loan stream under one labelling rule (no perturbation)."""
    from river.datasets import synth

    rows, labels = [], []
    for x, y in synth.Agrawal(classification_function=function, seed=seed).take(n):
        rows.append([x[k] for k in FEATURES])
        labels.append(int(y))
    return np.asarray(rows, dtype=float), np.asarray(labels, dtype=int)


def concept_stream(old: int, new: int, seed: int, n: int, start: int, width: int,
                   noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs that never change, labelled by rule `old` before `start` and by `new` after it.

    width 0 is an abrupt switch; width > 0 ramps the share of the new rule linearly over
    `width` samples (gradual drift). `noise` flips that share of the labels everywhere.
    """
    if not 0 <= start <= n:
        raise ValueError(f"drift start {start} is outside the stream of {n} samples")
    x, y_old = agrawal(old, seed, n)
    x_new, y_new = agrawal(new, seed, n)
    if not np.array_equal(x, x_new):
        raise RuntimeError("the two labelling rules did not see the same inputs")
    t = np.arange(n)
    share = np.clip((t - start + 1) / width, 0.0, 1.0) if width > 0 else (t >= start).astype(float)
    y = np.where(rng.random(n) < share, y_new, y_old)
    flip = rng.random(n) < noise
    return x, np.where(flip, 1 - y, y)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of one feature, on the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # a near-constant feature: bin on its distinct values
        edges = np.unique(np.concatenate([reference, current]))
        edges = np.append(edges, edges[-1] + 1)
    ref = np.histogram(np.clip(reference, edges[0], edges[-1]), edges)[0] / len(reference)
    cur = np.histogram(np.clip(current, edges[0], edges[-1]), edges)[0] / len(current)
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def input_drift(reference: np.ndarray, window: np.ndarray, alpha: float = 0.01,
                psi_alarm: float = 0.2) -> dict:
    """Per-feature KS test (Bonferroni over features) and PSI of one window against the reference."""
    if reference.ndim != 2 or window.ndim != 2 or reference.shape[1] != window.shape[1]:
        raise ValueError(f"reference {reference.shape} and window {window.shape} must be 2-D with the same features")
    pvalues = [ks_2samp(reference[:, j], window[:, j]).pvalue for j in range(window.shape[1])]
    psis = [psi(reference[:, j], window[:, j]) for j in range(window.shape[1])]
    return {
        "ks_alarm": bool(min(pvalues) < alpha / window.shape[1]),
        "psi_alarm": bool(max(psis) > psi_alarm),
        "min_p": float(min(pvalues)),
        "max_psi": float(max(psis)),
        "worst_feature": FEATURES[int(np.argmax(psis))] if window.shape[1] == len(FEATURES) else int(np.argmax(psis)),
    }


def make_detector(name: str):
    from river import drift

    if name == "adwin":
        return drift.ADWIN()
    if name == "ddm":
        return drift.binary.DDM()
    if name == "page_hinkley":
        return drift.PageHinkley(mode="up")
    raise ValueError(f"unknown detector {name!r}: use adwin, ddm or page_hinkley")


def detect(errors: np.ndarray, detector: str) -> list[int]:
    """Feed a 0/1 error stream, in label order, to a detector; the positions where it signalled.

    The detector is reset after each alarm, as a team would after acting on it. When labels
    arrive `d` steps after the prediction, an alarm at position i is raised at step i + d.
    """
    errors = np.asarray(errors)
    if errors.ndim != 1 or not np.isin(errors, (0, 1)).all():
        raise ValueError("errors must be a 1-D stream of 0 (right) and 1 (wrong)")
    det = make_detector(detector)
    alarms = []
    for i, e in enumerate(errors):
        det.update(bool(e) if detector == "ddm" else float(e))
        if det.drift_detected:
            alarms.append(i)
            det = make_detector(detector)
    return alarms
