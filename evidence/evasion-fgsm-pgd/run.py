"""Evasion: FGSM and PGD against a small CNN trained on scikit-learn's handwritten digits.

Trains the victim, then perturbs every test image within an L-infinity ball of radius eps
(pixels scaled to [0, 1]) and measures how much accuracy survives. Produces accuracy against
eps for both attacks and a gallery of adversarial digits next to their clean originals.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox

import torch  # noqa: E402

from digits_lab import DigitsCNN, accuracy, fgsm, load_split, pgd, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
# One thread: these models are tiny, and on a shared 2-core machine a second intra-op thread
# spends more time waiting for a core than computing (measured 20x slower under load).
torch.set_num_threads(1)
device = run.torch_device()

EPOCHS = run.pick(full=30, smoke=3)
PGD_STEPS = run.pick(full=20, smoke=3)
EPSILONS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]
HEADLINE_EPS = 0.2  # the radius the claims speak about: about three of the 16 grey levels


def gallery(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        pred_clean, pred_adv = model(x).argmax(1), model(adv).argmax(1)
    # one flipped example per class, so the figure shows what "fooled" looks like
    fooled = (pred_clean == y) & (pred_adv != y)
    picks = [int(torch.nonzero(fooled & (y == c))[0]) for c in range(10) if (fooled & (y == c)).any()]
    cols = max(len(picks), 1)
    fig, axes = plt.subplots(2, cols, figsize=(1.3 * cols, 3.0), squeeze=False)
    for col, i in enumerate(picks):
        for row, (img, pred, name) in enumerate(((x[i], pred_clean[i], "clean"), (adv[i], pred_adv[i], "PGD"))):
            ax = axes[row][col]
            ax.imshow(img[0].cpu(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{name}: {int(pred)}", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"PGD, eps={HEADLINE_EPS}: clean digit (top), adversarial twin (bottom), model's prediction",
                 fontsize=8)
    run.figure(fig, "adversarial-examples")


def curve(results: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, accs in results.items():
        ax.plot(EPSILONS, accs, marker="o", label=name.upper())
    ax.set_xlabel("eps (L-infinity radius, pixels in [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Digits CNN: accuracy under attack")
    run.figure(fig, "accuracy-vs-eps")


def main() -> None:
    x_tr, y_tr, x_te, y_te = load_split(run.seed, device)
    run.log("data.loaded", dataset="sklearn.load_digits", train=len(x_tr), test=len(x_te))
    model = train(DigitsCNN().to(device), x_tr, y_tr, epochs=EPOCHS, seed=run.seed, log=run.log)
    clean = accuracy(model, x_te, y_te)
    run.metric("clean_accuracy", clean)
    run.log("model.evaluated", clean_accuracy=round(clean, 4))

    results: dict[str, list[float]] = {"fgsm": [], "pgd": []}
    headline_adv = x_te
    for eps in EPSILONS:
        adv_f = fgsm(model, x_te, y_te, eps)
        adv_p = pgd(model, x_te, y_te, eps, PGD_STEPS, seed=run.seed + 1)
        acc_f, acc_p = accuracy(model, adv_f, y_te), accuracy(model, adv_p, y_te)
        results["fgsm"].append(acc_f)
        results["pgd"].append(acc_p)
        linf = (adv_p - x_te).abs().amax().item()
        run.log("attack.result", eps=eps, fgsm_accuracy=round(acc_f, 4), pgd_accuracy=round(acc_p, 4),
                max_perturbation=round(linf, 4))
        key = f"eps_{eps:g}".replace(".", "_")
        run.metric(f"fgsm.by_eps.{key}", acc_f)
        run.metric(f"pgd.by_eps.{key}", acc_p)
        if eps == HEADLINE_EPS:
            headline_adv = adv_p
            run.metric("fgsm.accuracy", acc_f)
            run.metric("pgd.accuracy", acc_p)
            run.metric("pgd.max_perturbation", linf)
    run.metric("eps", HEADLINE_EPS)
    run.metric("pgd.steps", PGD_STEPS)
    run.metric("test_samples", len(x_te))
    run.metric("accuracy_drop", clean - run.metrics["pgd"]["accuracy"])
    curve(results)
    gallery(model, x_te, y_te, headline_adv)
    run.finish()


if __name__ == "__main__":
    main()
