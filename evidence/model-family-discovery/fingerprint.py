"""Black-box discovery of a model's family through its prediction API.

The attacker trains shadow models of every candidate family on its own data, sends the same
probes to the victim and to each shadow, and names the family whose shadows answer most like the
victim (a nearest-shadow version of Oh et al., ICLR 2018). Probes are natural digits or crafted
inputs (noise, blends of two digits, amplified digits) that the attacker selects, using only its
shadows, for how differently the families answer them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FAMILIES = ("logistic_regression", "svm_rbf", "knn", "random_forest", "gradient_boosting", "mlp")
MODES = ("probabilities", "rounded", "label")
PROBE_KINDS = ("noise", "blend", "amplified")


def sample_config(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """Hyperparameters for one model of `family`, drawn at random (victims and shadows draw apart)."""
    if family == "logistic_regression":
        return {"C": float(10 ** rng.uniform(-1.5, 1.0))}
    if family == "svm_rbf":
        return {"C": float(10 ** rng.uniform(0.0, 1.5)), "gamma": float(10 ** rng.uniform(-1.7, -0.8))}
    if family == "knn":
        return {"n_neighbors": int(rng.choice([3, 5, 7, 9, 11])), "weights": str(rng.choice(["uniform", "distance"]))}
    if family == "random_forest":
        return {"n_estimators": int(rng.choice([60, 100, 150])), "max_features": str(rng.choice(["sqrt", "log2"]))}
    if family == "gradient_boosting":
        return {"learning_rate": float(rng.choice([0.1, 0.2, 0.3])), "max_iter": int(rng.choice([40, 60])),
                "max_leaf_nodes": int(rng.choice([15, 31]))}
    if family == "mlp":
        return {"hidden_layer_sizes": [int(rng.choice([64, 128, 256]))], "alpha": float(10 ** rng.uniform(-4, -2))}
    raise ValueError(f"unknown model family {family!r}: expected one of {', '.join(FAMILIES)}")


def build(family: str, config: dict[str, Any], seed: int) -> Any:
    """An unfitted scikit-learn estimator of `family` with `config`."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    if family == "logistic_regression":
        return LogisticRegression(C=config["C"], max_iter=2000)
    if family == "svm_rbf":
        # Platt-scaled probabilities (what SVC(probability=True) gave before scikit-learn 1.9).
        return CalibratedClassifierCV(SVC(C=config["C"], gamma=config["gamma"], random_state=seed),
                                      method="sigmoid", ensemble=False, cv=3)
    if family == "knn":
        return KNeighborsClassifier(**config)
    if family == "random_forest":
        return RandomForestClassifier(**config, random_state=seed, n_jobs=1)
    if family == "gradient_boosting":
        return HistGradientBoostingClassifier(**config, random_state=seed, early_stopping=False)
    if family == "mlp":
        return MLPClassifier(hidden_layer_sizes=tuple(config["hidden_layer_sizes"]), alpha=config["alpha"],
                             max_iter=400, random_state=seed)
    raise ValueError(f"unknown model family {family!r}: expected one of {', '.join(FAMILIES)}")


def respond(proba: np.ndarray, mode: str, decimals: int = 1) -> np.ndarray:
    """What the API returns for probability rows `proba` in `mode`, as a (n, classes) array.

    `label` is the top-1 class as a one-hot row (the API's label is the argmax of its
    probabilities); `rounded` rounds each probability to `decimals` places.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2:
        raise ValueError(f"proba must be (n, classes), got shape {proba.shape}")
    if mode == "probabilities":
        return proba
    if mode == "rounded":
        return np.round(proba, decimals)
    if mode == "label":
        out = np.zeros_like(proba)
        out[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
        return out
    raise ValueError(f"unknown API mode {mode!r}: expected one of {', '.join(MODES)}")


def crafted_probes(X: np.ndarray, y: np.ndarray, n_per_kind: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Candidate crafted probes built from the attacker's digits `X` (pixels in [0, 1]).

    noise: uniform pixels; blend: a 50/50-ish mix of two digits of different classes (near a
    decision boundary); amplified: a digit scaled by 1.5-3 (off the training range, where families
    extrapolate differently). Returns the probes and the kind index of each (into PROBE_KINDS).
    """
    if X.ndim != 2 or len(X) != len(y) or len(X) < 2:
        raise ValueError(f"X must be (n>=2, features) with one label per row, got {X.shape} and {len(y)} labels")
    noise = rng.uniform(0.0, 1.0, size=(n_per_kind, X.shape[1]))
    i = rng.integers(0, len(X), size=n_per_kind * 3)
    j = rng.integers(0, len(X), size=n_per_kind * 3)
    keep = np.flatnonzero(y[i] != y[j])[:n_per_kind]
    lam = rng.uniform(0.35, 0.65, size=(len(keep), 1))
    blend = lam * X[i[keep]] + (1 - lam) * X[j[keep]]
    k = rng.integers(0, len(X), size=n_per_kind)
    amplified = X[k] * rng.uniform(1.5, 3.0, size=(n_per_kind, 1))
    probes = np.vstack([noise, blend, amplified])
    kinds = np.concatenate([np.full(len(noise), 0), np.full(len(blend), 1), np.full(len(amplified), 2)])
    return probes, kinds


def separation_scores(responses: np.ndarray, families: np.ndarray) -> np.ndarray:
    """Per probe, how differently the families' shadows answer it: between-family over within-family spread.

    `responses` is (models, probes, classes); `families` names each model's family.
    """
    responses = np.asarray(responses, dtype=float)
    families = np.asarray(families)
    if responses.ndim != 3 or len(families) != len(responses):
        raise ValueError(f"responses must be (models, probes, classes) with one family per model, got "
                         f"{responses.shape} and {len(families)} families")
    grand = responses.mean(axis=0)
    between = np.zeros(responses.shape[1])
    within = np.zeros(responses.shape[1])
    names = np.unique(families)
    for f in names:
        group = responses[families == f]
        centre = group.mean(axis=0)
        between += ((centre - grand) ** 2).sum(axis=1)
        within += ((group - centre) ** 2).sum(axis=(0, 2)) / len(group)
    return between / len(names) / (within / len(names) + 1e-3)


def identify(victim: np.ndarray, shadows: np.ndarray, families: np.ndarray) -> str:
    """The family whose shadows answer closest to the victim (mean L1 distance over probes).

    `victim` is (probes, classes); `shadows` is (models, probes, classes).
    """
    victim = np.asarray(victim, dtype=float)
    shadows = np.asarray(shadows, dtype=float)
    if victim.shape != shadows.shape[1:]:
        raise ValueError(f"victim answers {victim.shape} do not match shadow answers {shadows.shape[1:]}")
    dist = np.abs(shadows - victim[None]).sum(axis=2).mean(axis=1)
    families = np.asarray(families)
    names = list(dict.fromkeys(families.tolist()))
    per_family = [dist[families == f].mean() for f in names]
    return str(names[int(np.argmin(per_family))])
