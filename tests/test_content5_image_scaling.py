"""Unit tests for evidence/image-scaling-attack/scaling.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evidence" / "image-scaling-attack"))

import scaling  # noqa: E402


@pytest.mark.parametrize("name", sorted(scaling.METHODS))
def test_operator_matches_real_resize(name):
    fn, _ = scaling.METHODS[name]
    L = scaling.operator(fn, 32, 4)
    x = np.random.default_rng(0).random((3, 32, 32))
    assert scaling.linearity_error(fn, L, x) < 1e-4


def test_nearest_reads_one_pixel_per_block_and_area_reads_all():
    near = scaling.operator(scaling.METHODS["torch_nearest"][0], 32, 4)
    area = scaling.operator(scaling.METHODS["torch_area"][0], 32, 4)
    assert np.count_nonzero(near.sum(axis=0)) == 4
    assert np.count_nonzero(area.sum(axis=0)) == 32


def test_craft_hits_target_and_changes_little_for_nearest():
    rng = np.random.default_rng(1)
    L = scaling.operator(scaling.METHODS["torch_nearest"][0], 32, 4)
    src, tgt = rng.random((2, 32, 32)), rng.random((2, 4, 4))
    adv = scaling.craft(L, src, tgt)
    assert np.allclose(scaling.apply(L, adv), tgt, atol=1e-6)
    assert np.count_nonzero(np.abs(adv - src) > 1e-9) <= 2 * 16
    assert adv.min() >= 0 and adv.max() <= 1


def test_craft_rejects_wrong_shape():
    L = scaling.operator(scaling.METHODS["torch_nearest"][0], 32, 4)
    with pytest.raises(ValueError, match=r"source must be \(batch, 32, 32\), got \(32, 32\)"):
        scaling.craft(L, np.zeros((32, 32)), np.zeros((1, 4, 4)))


def test_budget_and_parity_and_normalise():
    src = np.zeros((1, 8, 8))
    adv = np.ones((1, 8, 8))
    b = scaling.within_budget(src, adv, 20.0)
    assert scaling.psnr(src, b)[0] == pytest.approx(20.0)
    L = scaling.operator(scaling.METHODS["torch_area"][0], 8, 4)
    x = np.random.default_rng(2).random((2, 8, 8))
    same = scaling.parity(lambda i: scaling.preprocess(i, L, "unit"), lambda i: scaling.preprocess(i, L, "unit"), x)
    skew = scaling.parity(lambda i: scaling.preprocess(i, L, "unit"), lambda i: scaling.preprocess(i, L, "bytes"), x)
    assert same == 0 and skew > 1
    with pytest.raises(ValueError, match="unknown normalisation 'zscore': expected unit, standard or bytes"):
        scaling.preprocess(x, L, "zscore")
