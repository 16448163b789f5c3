"""Unit tests for evidence/shared-accelerator-leakage (its own logic, fast)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

PATH = Path(__file__).resolve().parents[1] / "evidence" / "shared-accelerator-leakage" / "tenancy.py"
spec = importlib.util.spec_from_file_location("sal_tenancy", PATH)
tenancy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tenancy)


def _weights():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    return [p.detach().numpy().copy() for p in m.parameters()]


def test_recovered_counts_rows_found_byte_for_byte():
    truth = {"input": np.arange(8, dtype=np.float32).reshape(2, 4) + 1}
    buf = torch.zeros(3, 4)
    buf[1] = torch.from_numpy(truth["input"][0])
    out = tenancy.recovered(truth, [buf])
    assert out["input"] == 0.5 and out["all"] == 0.5
    assert tenancy.recovered(truth, [torch.zeros(3, 4)])["all"] == 0.0


def test_zero_rows_are_not_counted():
    truth = {"hidden": np.zeros((3, 4), np.float32)}
    assert tenancy.recovered(truth, [torch.zeros(3, 4)])["all"] == 0.0


def test_zero_on_free_zeroes_every_request_tensor_and_predicts_the_same():
    model = tenancy.build_model(_weights())
    req = json.dumps({"rows": np.random.default_rng(0).standard_normal((5, 64)).tolist()})
    assert tenancy.handle_request(model, req)[0] == tenancy.handle_request(model, req, zero_on_free=True)[0]


def test_bad_mode_is_refused_with_its_message():
    with pytest.raises(ValueError, match=r"^unknown mode 'wipe': expected none, zero_on_free or zero_on_alloc$"):
        tenancy.shared_process_trial(_weights(), json.dumps({"rows": [[0.0] * 64]}), 1, "wipe")


def test_per_tenant_keys_separate_tenants_and_shared_keys_do_not():
    model = tenancy.build_model(_weights())
    req = json.dumps({"rows": [[0.5] * 64]})
    for per_tenant, hits in ((False, 1), (True, 0)):
        cache = tenancy.ResultCache(model, per_tenant=per_tenant)
        cache.serve("A", req)
        cache.serve("B", req)
        assert cache.hits == hits


def test_threshold_needs_both_calibrations():
    assert tenancy.threshold_from_calibration([1.0, 3.0], [0.0]) == 1.0
    with pytest.raises(ValueError, match="calibration needs at least one miss and one hit latency"):
        tenancy.threshold_from_calibration([], [0.1])
