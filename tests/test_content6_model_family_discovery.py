"""Unit tests for evidence/model-family-discovery/fingerprint.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evidence" / "model-family-discovery"))

import fingerprint  # noqa: E402


def test_respond_modes():
    p = np.array([[0.62, 0.30, 0.08], [0.1, 0.2, 0.7]])
    assert np.array_equal(fingerprint.respond(p, "probabilities"), p)
    assert np.allclose(fingerprint.respond(p, "rounded"), [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    assert np.array_equal(fingerprint.respond(p, "label"), [[1, 0, 0], [0, 0, 1]])


def test_respond_rejects_unknown_mode():
    with pytest.raises(ValueError, match=r"^unknown API mode 'logits': expected one of probabilities, rounded, label$"):
        fingerprint.respond(np.ones((1, 3)) / 3, "logits")


def test_build_rejects_unknown_family():
    with pytest.raises(ValueError, match=r"^unknown model family 'xgboost': expected one of logistic_regression, svm_rbf, "
                                         r"knn, random_forest, gradient_boosting, mlp$"):
        fingerprint.build("xgboost", {}, seed=0)


def test_every_family_builds_from_a_sampled_config():
    rng = np.random.default_rng(0)
    for family in fingerprint.FAMILIES:
        model = fingerprint.build(family, fingerprint.sample_config(family, rng), seed=0)
        assert hasattr(model, "predict_proba")


def test_crafted_probes_kinds_and_blends_mix_two_classes():
    rng = np.random.default_rng(1)
    X = rng.random((40, 8))
    y = np.arange(40) % 4
    probes, kinds = fingerprint.crafted_probes(X, y, 10, rng)
    assert probes.shape == (30, 8) and len(kinds) == 30
    assert sorted(set(kinds.tolist())) == [0, 1, 2]
    assert probes[kinds == 2].max() > 1.0  # amplified digits leave the training range


def test_separation_prefers_probes_that_split_families():
    # probe 0: the two families answer differently; probe 1: everyone answers the same
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.5, 0.5]])
    responses = np.stack([a, a, b, b])
    scores = fingerprint.separation_scores(responses, np.array(["f", "f", "g", "g"]))
    assert scores[0] > 100 * scores[1]


def test_identify_names_the_closest_family_and_checks_shapes():
    shadows = np.stack([np.eye(3), np.eye(3), np.eye(3)[::-1], np.eye(3)[::-1]])
    fams = np.array(["linear", "linear", "trees", "trees"])
    assert fingerprint.identify(np.eye(3)[::-1], shadows, fams) == "trees"
    assert fingerprint.identify(np.eye(3), shadows, fams) == "linear"
    with pytest.raises(ValueError, match=r"victim answers \(2, 3\) do not match shadow answers \(3, 3\)"):
        fingerprint.identify(np.eye(3)[:2], shadows, fams)


def test_label_only_still_separates_families_on_noise():
    """A tiny end-to-end check: label answers to crafted probes identify a k-NN against a linear model."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data[:600] / 16.0, d.target[:600]
    rng = np.random.default_rng(0)
    probes, _ = fingerprint.crafted_probes(X[300:], y[300:], 40, rng)
    fams, answers = [], []
    for family in ("logistic_regression", "knn"):
        for k, idx in enumerate((slice(300, 450), slice(450, 600))):
            m = fingerprint.build(family, fingerprint.sample_config(family, rng), seed=k).fit(X[idx], y[idx])
            fams.append(family)
            answers.append(fingerprint.respond(m.predict_proba(probes), "label"))
    victim = fingerprint.build("knn", {"n_neighbors": 5, "weights": "uniform"}, seed=0).fit(X[:300], y[:300])
    got = fingerprint.identify(fingerprint.respond(victim.predict_proba(probes), "label"), np.stack(answers), np.array(fams))
    assert got == "knn"
