"""Unit tests for the model-free logic of evidence/embedding-inversion (no embedding model needed)."""

from pathlib import Path

import numpy as np
import pytest

from fmbuild.evidence import kit

invert = kit.load_file("ei_invert", Path(__file__).resolve().parents[1] / "evidence" / "embedding-inversion" / "invert.py")


def test_records_are_deterministic_and_drawn_from_dictionaries():
    values = invert.dictionaries({"first_name": 5, "surname": 4, "birth_year": 3, "condition": 2})
    a = invert.make_records(np.random.default_rng(7), 20, values)
    b = invert.make_records(np.random.default_rng(7), 20, values)
    assert a == b
    assert all(r[k] in values[k] for r in a for k in invert.ATTRIBUTES)
    assert invert.render(a[0]).startswith(f"Patient {a[0]['first_name']} {a[0]['surname']}, born ")


def test_bad_dictionary_size_is_refused_with_its_message():
    with pytest.raises(ValueError, match=r"^condition: dictionary size must be between 2 and 20, not 50$"):
        invert.dictionaries({"condition": 50})
    with pytest.raises(ValueError, match=r"^unknown attribute 'ssn'$"):
        invert.dictionaries({"ssn": 3})


def test_match_picks_the_nearest_probe():
    probes = np.eye(3, dtype="float32")
    store = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]], dtype="float32")
    assert invert.match(store, probes).tolist() == [1, 0]


def test_ids_only_labels_use_best_rank_and_leave_unreturned_records_unlabelled():
    store = np.eye(4, dtype="float32")
    probes = np.array([[1, 0.5, 0, 0], [0, 1, 0, 0]], dtype="float32")
    labels = invert.ids_only_labels(store, probes, k=2)
    # probe 0 returns ids 0 then 1; probe 1 returns id 1 first, which beats rank 1 from probe 0.
    assert labels.tolist() == [0, 1, -1, -1]


def test_noise_keeps_unit_norm_and_zero_noise_is_identity():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 8)).astype("float32")
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert np.allclose(invert.add_noise(v, 0.0, rng), v)
    noisy = invert.add_noise(v, 0.5, rng)
    assert np.allclose(np.linalg.norm(noisy, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(noisy, v)
    with pytest.raises(ValueError, match=r"^sigma must be >= 0, not -1$"):
        invert.add_noise(v, -1, rng)


def test_recall_at_k():
    store = np.eye(3, dtype="float32")
    queries = np.array([[1, 0, 0], [0, 0, 1]], dtype="float32")
    assert invert.recall_at_k(store, queries, np.array([0, 2]), 1) == 1.0
    assert invert.recall_at_k(store, queries, np.array([1, 2]), 1) == 0.5
