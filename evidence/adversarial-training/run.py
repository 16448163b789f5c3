"""Adversarial training: the same digits CNN trained on PGD examples instead of clean ones.

Trains a naive model and an adversarially trained model (PGD inside the training loop, Madry et
al.) on the same data, attacks both with FGSM and with a stronger PGD than the one used in
training (more steps, two random restarts, the worst case kept), and measures what robustness
was bought and what clean accuracy it cost.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import torch  # noqa: E402

from digits_lab import DigitsCNN, accuracy, fgsm, load_split, pgd, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

EPS = 0.2  # the radius the evasion module breaks the naive model at
EPOCHS = run.pick(full=30, smoke=2)
TRAIN_STEPS = run.pick(full=5, smoke=2)  # PGD steps inside training: cheaper than the evaluation attack
EVAL_STEPS = run.pick(full=20, smoke=3)
CURVE_EPS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]


def worst_case_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """PGD with two random restarts; per sample, keep whichever restart fooled the model."""
    best = pgd(model, x, y, eps, EVAL_STEPS, seed=run.seed + 101)
    other = pgd(model, x, y, eps, EVAL_STEPS, seed=run.seed + 202)
    with torch.no_grad():
        still_right = model(best).argmax(1) == y
    best[still_right] = other[still_right]
    return best


def evaluate(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    clean = accuracy(model, x, y)
    acc_fgsm = accuracy(model, fgsm(model, x, y, EPS), y)
    acc_pgd = accuracy(model, worst_case_pgd(model, x, y, EPS), y)
    run.metric(f"{name}.clean_accuracy", clean)
    run.metric(f"{name}.fgsm_accuracy", acc_fgsm)
    run.metric(f"{name}.pgd_accuracy", acc_pgd)
    run.log("model.evaluated", model=name, eps=EPS, clean_accuracy=round(clean, 4),
            fgsm_accuracy=round(acc_fgsm, 4), pgd_accuracy=round(acc_pgd, 4))
    return [accuracy(model, worst_case_pgd(model, x, y, e), y) if e else clean for e in CURVE_EPS]


def plot(curves: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, accs in curves.items():
        ax.plot(CURVE_EPS, accs, marker="o", label=name)
    ax.axvline(EPS, color="grey", linestyle=":", label=f"training eps = {EPS}")
    ax.set_xlabel("PGD eps (L-infinity, pixels in [0, 1])")
    ax.set_ylabel("test accuracy under PGD")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Naive vs adversarially trained digits CNN")
    run.figure(fig, "robust-accuracy-vs-eps")


def main() -> None:
    x_tr, y_tr, x_te, y_te = load_split(run.seed, device)
    run.log("data.loaded", dataset="sklearn.load_digits", train=len(x_tr), test=len(x_te))
    torch.manual_seed(run.seed)
    naive = train(DigitsCNN().to(device), x_tr, y_tr, epochs=EPOCHS, seed=run.seed, log=run.log, tag="naive")
    torch.manual_seed(run.seed)  # same initial weights: the only difference is what the loop trains on
    adversary = partial(pgd, eps=EPS, steps=TRAIN_STEPS, seed=run.seed + 7)
    robust = train(DigitsCNN().to(device), x_tr, y_tr, epochs=EPOCHS, seed=run.seed, log=run.log,
                   adversary=lambda m, xb, yb: adversary(m, xb, yb), tag="adversarial")
    curves = {"naive": evaluate("naive", naive, x_te, y_te), "adversarially trained": evaluate("robust", robust, x_te, y_te)}
    m = run.metrics
    run.metric("clean_accuracy_cost", m["naive"]["clean_accuracy"] - m["robust"]["clean_accuracy"])
    run.metric("robust_accuracy_gain", m["robust"]["pgd_accuracy"] - m["naive"]["pgd_accuracy"])
    run.metric("eps", EPS)
    run.metric("train_pgd_steps", TRAIN_STEPS)
    run.metric("eval_pgd_steps", EVAL_STEPS)
    run.log("defence.summary", robust_accuracy_gain=round(m["robust_accuracy_gain"], 4),
            clean_accuracy_cost=round(m["clean_accuracy_cost"], 4))
    plot(curves)
    run.finish()


if __name__ == "__main__":
    main()
