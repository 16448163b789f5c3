"""Unit tests for evidence/concept-drift/drift_lab.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evidence" / "concept-drift"))

import drift_lab as lab  # noqa: E402


def test_concept_stream_keeps_inputs_and_switches_labels():
    rng = np.random.default_rng(0)
    x, y = lab.concept_stream(2, 8, seed=5, n=600, start=300, width=0, noise=0.0, rng=rng)
    x_old, y_old = lab.agrawal(2, 5, 600)
    _, y_new = lab.agrawal(8, 5, 600)
    assert np.array_equal(x, x_old)
    assert np.array_equal(y[:300], y_old[:300])
    assert np.array_equal(y[300:], y_new[300:])
    assert (y_old != y_new).mean() > 0.2  # the two rules really disagree


def test_gradual_stream_ramps_the_share_of_new_labels():
    rng = np.random.default_rng(1)
    _, y_old = lab.agrawal(2, 7, 4000)
    _, y_new = lab.agrawal(8, 7, 4000)
    _, y = lab.concept_stream(2, 8, seed=7, n=4000, start=1000, width=2000, noise=0.0, rng=rng)
    differ = y_old != y_new
    early = (y[1000:1500] == y_new[1000:1500])[differ[1000:1500]].mean()
    late = (y[2500:3000] == y_new[2500:3000])[differ[2500:3000]].mean()
    assert early < 0.3 < 0.6 < late


def test_concept_stream_rejects_a_start_outside_the_stream():
    with pytest.raises(ValueError, match="drift start 700 is outside the stream of 600 samples"):
        lab.concept_stream(2, 8, 0, 600, 700, 0, 0.0, np.random.default_rng(0))


def test_input_monitor_quiet_on_same_inputs_and_fires_on_shift():
    ref, _ = lab.agrawal(2, 1, 2000)
    same, _ = lab.agrawal(8, 2, 500)
    assert not lab.input_drift(ref, same)["ks_alarm"]
    moved = same.copy()
    moved[:, 0] *= 1.3
    r = lab.input_drift(ref, moved)
    assert r["ks_alarm"] and r["worst_feature"] == "salary"


def test_input_monitor_rejects_mismatched_features():
    with pytest.raises(ValueError, match=r"reference \(10, 9\) and window \(5, 3\) must be 2-D with the same features"):
        lab.input_drift(np.zeros((10, 9)), np.zeros((5, 3)))


def test_psi_zero_for_identical_and_large_for_disjoint():
    a = np.random.default_rng(0).normal(size=1000)
    assert lab.psi(a, a) == pytest.approx(0.0, abs=1e-9)
    assert lab.psi(a, a + 5) > 1.0


@pytest.mark.parametrize("detector", ["adwin", "ddm", "page_hinkley"])
def test_detectors_find_an_error_step_and_not_a_flat_stream(detector):
    rng = np.random.default_rng(3)
    flat = (rng.random(3000) < 0.05).astype(int)
    step = np.concatenate([flat[:1500], (rng.random(1500) < 0.5).astype(int)])
    late = [a for a in lab.detect(step, detector) if a >= 1500]
    assert late and late[0] - 1500 < 300
    if detector != "ddm":  # DDM alarms on noise; the module measures how often
        assert lab.detect(flat, detector) == []


def test_detect_rejects_non_binary_errors_and_unknown_detector():
    with pytest.raises(ValueError, match=r"errors must be a 1-D stream of 0 \(right\) and 1 \(wrong\)"):
        lab.detect(np.array([0, 2, 1]), "adwin")
    with pytest.raises(ValueError, match="unknown detector 'kswin': use adwin, ddm or page_hinkley"):
        lab.detect(np.array([0, 1]), "kswin")
