"""Unit tests for evidence/model-inversion/inversion.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evidence" / "model-inversion"))

import inversion  # noqa: E402


@pytest.fixture(scope="module")
def victim():
    """A tiny MLP on two synthetic 'digits': a bright left half (class 0) or right half (class 1)."""
    rng = np.random.default_rng(0)
    left = np.zeros((8, 8))
    left[:, :4] = 1.0
    x = np.concatenate([np.clip(left.ravel() + rng.normal(0, 0.2, (40, 64)), 0, 1),
                        np.clip(left[:, ::-1].ravel() + rng.normal(0, 0.2, (40, 64)), 0, 1)])
    y = np.repeat([0, 1], 40)
    return inversion.train_mlp(x, y, epochs=60, hidden=8, seed=0), left.ravel()


def test_answers_per_mode():
    p = np.array([[0.62, 0.31, 0.07], [0.04, 0.15, 0.81]])
    assert inversion.answer(p, "full")["probs"] is p
    assert np.allclose(inversion.answer(p, "rounded")["probs"], [[0.6, 0.3, 0.1], [0.0, 0.2, 0.8]])
    top = inversion.answer(p, "top1")
    assert list(top["label"]) == [0, 2] and np.allclose(top["confidence"], [0.62, 0.81])
    assert set(inversion.answer(p, "label")) == {"label"}
    est = inversion.target_estimate(top, np.array([1, 2]), classes=3)
    assert np.allclose(est, [0.19, 0.81])                     # not the top class: the rest spread evenly
    assert list(inversion.target_estimate(inversion.answer(p, "label"), np.array([0, 0]))) == [1.0, 0.0]


def test_api_counts_queries_and_rejects_unknown_mode(victim):
    model, _ = victim
    api = inversion.PredictionAPI(model, "label")
    api(np.zeros((3, 64)))
    api(np.zeros((2, 64)))
    assert api.queries == 5
    with pytest.raises(ValueError, match="unknown API mode 'logits': expected one of full, top1, rounded, label"):
        inversion.PredictionAPI(model, "logits")


def test_bad_images_rejected(victim):
    model, _ = victim
    api = inversion.PredictionAPI(model)
    with pytest.raises(ValueError, match=r"images must be \(batch, 64\) flattened 8x8 images, got \(8, 8\)"):
        api(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="images must be finite"):
        api(np.full((1, 64), np.nan))


def test_invert_rejects_bad_targets(victim):
    model, _ = victim
    with pytest.raises(ValueError, match=r"targets must be a non-empty 1-d array of class indices, got shape \(0,\)"):
        inversion.invert(inversion.PredictionAPI(model), np.array([], dtype=int), steps=5, rng=np.random.default_rng(0))


def test_black_box_inversion_recovers_the_class_and_label_only_naive_does_not(victim):
    model, left = victim
    targets = np.array([0, 1])
    api = inversion.PredictionAPI(model, "full")
    inv = inversion.invert(api, targets, steps=30, directions=10, rng=np.random.default_rng(1))
    assert api.queries == inv.queries.sum() and inv.queries.max() <= 30 * 21 + 1
    c = inversion.correlation(inv.images, np.stack([left, left.reshape(8, 8)[:, ::-1].ravel()]))
    assert (c > 0.5).all()
    assert list(inversion.probabilities(model, inv.images).argmax(1)) == [0, 1]
    assert inv.images.min() >= 0 and inv.images.max() <= 1
    # the grey start is classified as one class; for the other, small probes of a bare label see no slope
    start_class = int(inversion.probabilities(model, np.full((1, 64), 0.5)).argmax())
    other = np.array([1 - start_class])
    lab = inversion.invert(inversion.PredictionAPI(model, "label"), other, steps=30, directions=10, sigma=0.01,
                           rng=np.random.default_rng(2))
    assert np.allclose(lab.images, 0.5) and lab.steps[0] <= 16


def test_white_box_gradient_points_to_the_class(victim):
    model, left = victim
    g = inversion.white_box_gradient(model)(np.full((1, 64), 0.5), np.array([0]))
    assert inversion.correlation(g, left[None])[0] > 0.5


def test_smoothness_prior_and_metrics():
    flat = np.full((1, 64), 0.3)
    assert np.allclose(inversion.smoothness_grad(flat), 0)
    spike = np.zeros((1, 64))
    spike[0, 27] = 1.0
    assert inversion.smoothness_grad(spike)[0, 27] == pytest.approx(8.0)
    means = np.eye(3, 64)
    assert list(inversion.nearest_mean(means[[2, 0]], means)) == [2, 0]
    assert inversion.correlation(flat, means[:1])[0] == 0.0


def test_caller_utility_label_only_loses_ranking():
    p = np.array([[0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.45, 0.1, 0.45]])
    y = np.array([1, 1, 0, 2])
    full = inversion.caller_utility(p, y, "full", k=2, coverage=0.5)
    lab = inversion.caller_utility(p, y, "label", k=2, coverage=0.5)
    assert full["accuracy"] == lab["accuracy"] == 0.5
    assert full["top_k"] == 1.0 and lab["top_k"] == 0.5
    assert full["selective_accuracy"] == 1.0 and lab["selective_accuracy"] == 0.5
    assert full["error_auroc"] == 1.0 and lab["error_auroc"] == 0.5
