"""Content I evidence modules (evasion, poisoning, membership inference, extraction), tested piece
by piece: the shared attacks stay inside their budget, the CI gate's exit codes, the squeezer, the
trigger, the API budget, the attack scores. Full runs are `fmbuild verify` territory; smoke runs
are in test_modules_smoke.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from safetensors.torch import save_file  # noqa: E402

EVIDENCE = Path(__file__).resolve().parents[1] / "evidence"


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch | None = None, out: Path | None = None) -> ModuleType:
    """Import one module file under a unique name; a run.py starts a smoke run into `out`."""
    if monkeypatch is not None and out is not None:
        monkeypatch.setenv("FMBUILD_OUT", str(out))
        monkeypatch.setenv("FMBUILD_SCALE", "smoke")
        monkeypatch.setenv("FMBUILD_DEVICE", "cpu")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EVIDENCE / "evasion-fgsm-pgd"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EVIDENCE / "evasion-fgsm-pgd"))
    return module


LAB = load(EVIDENCE / "evasion-fgsm-pgd" / "digits_lab.py", "content1_digits_lab")
GATE = load(EVIDENCE / "robustness-ci-gate" / "gate.py", "content1_gate")


@pytest.fixture(scope="module")
def trained() -> tuple:
    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te = LAB.load_split(0, torch.device("cpu"))
    model = LAB.train(LAB.DigitsCNN(), x_tr, y_tr, epochs=2, seed=0, log=lambda *a, **k: None)
    return model, x_te[:100], y_te[:100]


# --- the shared attacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_pgd_stays_inside_the_ball_and_the_pixel_range(trained, eps: float) -> None:
    model, x, y = trained
    adv = LAB.pgd(model, x, y, eps, steps=3, seed=1)
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


def test_fgsm_moves_pixels_by_eps_and_lowers_accuracy(trained) -> None:
    model, x, y = trained
    adv = LAB.fgsm(model, x, y, 0.3)
    assert (adv - x).abs().max().item() == pytest.approx(0.3, abs=1e-6)
    assert LAB.accuracy(model, adv, y) < LAB.accuracy(model, x, y)


def test_pgd_with_zero_budget_returns_the_input(trained) -> None:
    model, x, y = trained
    assert torch.equal(LAB.pgd(model, x, y, 0.0, steps=3, seed=1), x)


def test_split_is_deterministic_per_seed() -> None:
    a = LAB.load_split(3, torch.device("cpu"))
    b = LAB.load_split(3, torch.device("cpu"))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


# --- the robustness gate --------------------------------------------------------------------------


def saved(model, tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def test_gate_passes_and_fails_on_the_threshold(trained, tmp_path: Path, capsys) -> None:
    model, _, _ = trained
    path = saved(model, tmp_path)
    assert GATE.main(["--model", str(path), "--threshold", "0.0", "--attack", "none"]) == 0
    assert '"verdict": "pass"' in capsys.readouterr().out
    assert GATE.main(["--model", str(path), "--threshold", "1.0", "--attack", "pgd", "--steps", "2"]) == 1
    assert '"verdict": "fail"' in capsys.readouterr().out


def test_gate_missing_or_corrupt_model_is_a_usage_error_not_a_pass(tmp_path: Path, capsys) -> None:
    assert GATE.main(["--model", str(tmp_path / "absent.safetensors"), "--threshold", "0.5"]) == 2
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    assert GATE.main(["--model", str(corrupt), "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "cannot load model" in err and "Traceback" not in err


def test_gate_refuses_a_threshold_outside_zero_one(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        GATE.main(["--model", str(tmp_path / "m.safetensors"), "--threshold", "70"])
    assert exc.value.code == 2


# --- pieces of the module runs ---------------------------------------------------------------------


def test_squeezer_keeps_four_grey_levels(monkeypatch, tmp_path: Path) -> None:
    det = load(EVIDENCE / "adversarial-input-detection" / "run.py", "content1_detect", monkeypatch, tmp_path)
    x = torch.rand(5, 1, 8, 8)
    scaled = det.squeeze_bits(x) * 3
    assert torch.allclose(scaled, scaled.round(), atol=1e-5)  # only 0, 1/3, 2/3, 1
    assert (det.squeeze_bits(x) - x).abs().max().item() <= 1 / 6 + 1e-6


def test_adaptive_attack_stays_in_the_ball_and_fools_the_squeezed_model_too(trained, monkeypatch, tmp_path: Path) -> None:
    det = load(EVIDENCE / "adversarial-input-detection" / "run.py", "content1_detect_adaptive", monkeypatch, tmp_path)
    model, x, y = trained
    plain = LAB.pgd(model, x, y, 0.1, steps=10, seed=1)
    adaptive = det.adaptive_pgd(model, x, y, 0.1, steps=10, seed=1)
    assert (adaptive - x).abs().max().item() <= 0.1 + 1e-6
    assert adaptive.min().item() >= 0.0 and adaptive.max().item() <= 1.0
    # knowing the squeezer, the attacker makes the squeezed input wrong as well as the raw one (the
    # gradient really flows through the rounding: with none, the random start alone would do little)
    squeezed_clean = LAB.accuracy(model, det.squeeze_bits(x), y)
    assert LAB.accuracy(model, adaptive, y) < LAB.accuracy(model, x, y) - 0.2
    assert LAB.accuracy(model, det.squeeze_bits(adaptive), y) < squeezed_clean - 0.2
    assert LAB.accuracy(model, det.squeeze_bits(adaptive), y) <= LAB.accuracy(model, det.squeeze_bits(plain), y)


def test_membership_interval_brackets_the_estimate_and_is_tight_when_separable(monkeypatch, tmp_path: Path) -> None:
    mia = load(EVIDENCE / "membership-inference" / "run.py", "content1_mia_ci", monkeypatch, tmp_path)
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(800)]
    separable = np.r_[rng.uniform(2, 3, 200), rng.uniform(0, 1, 800)]
    assert mia.tpr_interval(labels, separable, seed=0) == (1.0, 1.0)
    noisy = np.r_[rng.normal(1, 1, 200), rng.normal(0, 1, 800)]
    low, high = mia.tpr_interval(labels, noisy, seed=0)
    assert low <= mia.tpr_at_fpr(labels, noisy) <= high and high - low > 0.01


def test_trigger_only_touches_the_corner(monkeypatch, tmp_path: Path) -> None:
    poison = load(EVIDENCE / "poisoning-backdoor" / "run.py", "content1_poison", monkeypatch, tmp_path)
    x = torch.zeros(2, 1, 8, 8)
    stamped = poison.stamp(x)
    assert stamped[:, :, 6:8, 6:8].eq(1).all()
    assert stamped.sum().item() == 8 and x.sum().item() == 0  # input untouched


def test_membership_scores_rank_confidence_and_tpr_is_read_at_low_fpr(monkeypatch, tmp_path: Path) -> None:
    mia = load(EVIDENCE / "membership-inference" / "run.py", "content1_mia", monkeypatch, tmp_path)
    probs = np.array([[0.99, 0.01], [0.6, 0.4], [0.2, 0.8]])
    scores = mia.log_odds(probs, np.array([0, 0, 0]))
    assert scores[0] > scores[1] > scores[2]
    labels = np.r_[np.ones(50), np.zeros(50)]
    assert mia.tpr_at_fpr(labels, np.r_[np.ones(50), np.zeros(50)]) == 1.0
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4)), np.arange(40) % 3
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    label_only = mia.api(forest, x, "label")
    assert set(np.unique(label_only)) <= {0.0, 1.0} and (label_only.sum(1) == 1).all()
    assert (label_only.argmax(1) == forest.predict_proba(x).argmax(1)).all()
    assert set(np.unique(mia.api(forest, x, "rounded") * 10).round(6)) <= set(range(11))


def test_prediction_api_budget_refuses_beyond_it(monkeypatch, tmp_path: Path) -> None:
    ext = load(EVIDENCE / "model-extraction" / "run.py", "content1_extract", monkeypatch, tmp_path)
    api = ext.PredictionAPI(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), budget=30)
    x = torch.rand(20, 1, 8, 8)
    first = api.predict("k", x)
    second = api.predict("k", x)
    assert first is not None and len(first) == 20
    assert second is not None and len(second) == 10  # partially served up to the budget
    assert api.predict("k", x) is None  # 429
    assert api.refused["k"] == 30 and api.served["k"] == 30
    assert api.predict("other-key", x) is not None  # budgets are per client
    assert torch.all(first.sum(1) == 1) and set(first.unique().tolist()) <= {0.0, 1.0}  # labels only


def test_prada_separates_synthetic_from_natural_queries(monkeypatch, tmp_path: Path) -> None:
    ext = load(EVIDENCE / "model-extraction" / "run.py", "content1_extract2", monkeypatch, tmp_path)
    from sklearn.datasets import load_digits

    natural = (load_digits().images[:100] / 16.0).astype(np.float32)[:, None]
    seeds = torch.from_numpy(natural[:10])
    synthetic = ext.synthesise(seeds, 100, np.random.default_rng(0)).numpy()
    assert ext.prada_statistic(synthetic) < ext.prada_statistic(natural)
