"""Unit tests for evidence/federated-poisoning/fedlab.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evidence" / "federated-poisoning"))

import fedlab  # noqa: E402


def _toy(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, fedlab.N_IN)) * 0.5
    X[:, list(fedlab.TRIGGER_PIXELS)] = 0.0
    y = rng.integers(0, 10, size=n)
    return X, y


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X, y = _toy(16)
    clients = fedlab.pack([(X, y)])
    theta = fedlab.init_params(rng)
    cfg = fedlab.LocalConfig(steps=1, batch=16, lr=1e-3, weight_decay=0.0)
    # one SGD step on a batch drawn with replacement; recompute the same batch's loss numerically
    draw = np.random.default_rng(5)
    idx = (draw.random((1, 16)) * 16).astype(np.int64)[0]
    step = fedlab.local_train(theta, clients, cfg, np.random.default_rng(5))[0]
    grad = -step / cfg.lr

    def loss(t):
        z = fedlab.logits(t, X[idx])
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(16), y[idx]]))

    for j in rng.choice(fedlab.P, size=12, replace=False):
        e = np.zeros(fedlab.P)
        e[j] = 1e-6
        num = (loss(theta + e) - loss(theta - e)) / 2e-6
        assert grad[j] == pytest.approx(num, rel=1e-3, abs=1e-6)


def test_aggregators_on_a_planted_outlier():
    rng = np.random.default_rng(1)
    D = rng.normal(0, 0.01, size=(10, 5)) + 1.0
    D[0] = -100.0
    assert fedlab.aggregate("fedavg", D, 1, rng)[0].mean() < -8
    for name in ("median", "trimmed_mean"):
        assert np.allclose(fedlab.aggregate(name, D, 1, rng)[0], 1.0, atol=0.05)
    upd, info = fedlab.aggregate("krum", D, 1, rng)
    assert info.selected != 0 and np.allclose(upd, D[info.selected])
    upd, info = fedlab.aggregate("clip", D, 1, rng)
    assert info.clipped >= 1 and np.linalg.norm(upd) <= info.bound + 1e-9
    assert list(np.flatnonzero(fedlab.norm_flags(D))) == [0]


def test_norm_bound_holds_during_training_and_clip_rows():
    X, y = _toy()
    clients = fedlab.split_iid(X, y, 4, np.random.default_rng(0))
    theta = fedlab.init_params(np.random.default_rng(0))
    bound = np.full(4, 0.05)
    D = fedlab.local_train(theta, clients, fedlab.LocalConfig(steps=5, lr=0.5), np.random.default_rng(0), bound=bound)
    assert np.all(np.linalg.norm(D, axis=1) <= 0.05 + 1e-9)
    small = np.array([[0.01, 0.0]])
    assert np.array_equal(fedlab.clip_rows(small, 1.0), small)


def test_splits_and_poison():
    X, y = _toy(400)
    skew = fedlab.split_label_skew(X, y, 10, np.random.default_rng(0))
    assert skew.n.sum() == 400
    classes = [len(np.unique(skew.y[i, : skew.n[i]])) for i in range(10)]
    assert max(classes) <= 4 and np.median(classes) <= 3  # two label-sorted shards: two classes, a few straddle
    iid = fedlab.split_iid(X, y, 10, np.random.default_rng(0))
    bad = fedlab.poison(iid.subset(np.arange(2)), 0.5, np.random.default_rng(0))
    assert list(bad.n) == [60, 60]
    extra_x, extra_y = bad.X[0, 40:60], bad.y[0, 40:60]
    assert np.all(extra_y == fedlab.TARGET_CLASS) and np.all(extra_x[:, list(fedlab.TRIGGER_PIXELS)] == 1.0)


def test_boosted_backdoor_beats_fedavg_but_not_median_in_a_short_run():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data / 16.0, d.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    test = (X[order[:300]], y[order[:300]])
    clients = fedlab.split_iid(X[order[300:900]], y[order[300:900]], 10, rng)
    cfg = fedlab.FedConfig(rounds=8, malicious=2, f=2)
    avg = fedlab.federate("fedavg", "backdoor_boost", clients, test, cfg, seed=0)
    med = fedlab.federate("median", "backdoor_boost", clients, test, cfg, seed=0)
    assert avg.backdoor[-1] > 0.8
    assert med.backdoor[-1] < 0.2
    assert len(avg.accuracy) == 8
    krum = fedlab.federate("krum", "backdoor_boost", clients, test, cfg, seed=0, log_at=(1, 8))
    assert [line["round"] for line in krum.rounds_log] == [1, 8]
    assert krum.krum_malicious_picks == 0  # a boosted update is far from every honest one
    assert avg.norm_flag_malicious_rate > 0.8 and avg.norm_flag_honest_rate == 0.0


def test_bad_input_messages():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown aggregator 'mean': expected one of fedavg, median, trimmed_mean, clip, clip_noise, krum"):
        fedlab.aggregate("mean", np.zeros((3, 2)), 0, rng)
    with pytest.raises(ValueError, match=r"trimmed_mean needs more than 2f = 4 clients, got 4"):
        fedlab.aggregate("trimmed_mean", np.zeros((4, 2)), 2, rng)
    with pytest.raises(ValueError, match=r"krum needs clients > f \+ 2 = 4, got 4"):
        fedlab.aggregate("krum", np.zeros((4, 2)), 2, rng)
    with pytest.raises(ValueError, match=r"updates must be a \(clients, parameters\) matrix, got shape \(3,\)"):
        fedlab.aggregate("median", np.zeros(3), 0, rng)
    with pytest.raises(ValueError, match=f"parameter vector must have length {fedlab.P}, got 5"):
        fedlab.unflatten(np.zeros(5))
    with pytest.raises(ValueError, match="unknown attack 'labelflip': expected one of none, signflip, backdoor_boost, backdoor_bounded"):
        fedlab.federate("fedavg", "labelflip", None, (None, None), fedlab.FedConfig(), 0)
