"""The guard-model module's threshold: set on tuning scores so the false-positive budget holds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

RUN = Path(__file__).resolve().parents[1] / "evidence" / "llm-guard-model" / "run.py"


@pytest.fixture(scope="module")
def guard_model():
    spec = importlib.util.spec_from_file_location("llm_guard_model_under_test", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("budget", [0.0, 0.05, 0.1, 0.5])
def test_threshold_flags_at_most_the_budget(guard_model, budget: float) -> None:
    scores = np.random.default_rng(0).normal(size=200)
    t = guard_model.threshold_at_budget(scores, budget)
    assert (scores > t).mean() <= budget
    # and it is the lowest such threshold among the scores: one step lower breaks the budget
    lower = np.sort(scores)[np.sort(scores) < t]
    if budget > 0 and len(lower):
        assert (scores > lower[-1]).mean() > budget


def test_held_out_families_are_disjoint_from_tuning(guard_model) -> None:
    assert not set(guard_model.TUNE) & set(guard_model.HELD_OUT)
    assert {1, 0} == set(guard_model.TUNE.values()) == set(guard_model.HELD_OUT.values())
