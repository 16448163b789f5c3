"""Adversarial input detection by feature squeezing (Xu, Evans and Qi, NDSS 2018).

An input is scored by how far the model's prediction moves when the input is "squeezed":
here bit-depth reduction to four grey levels, the squeezer the paper found strongest on
handwritten digits (a median filter destroys an 8x8 digit). Clean digits barely move; small
adversarial perturbations live in exactly the low-amplitude detail that squeezing rounds away,
so their prediction jumps. Large perturbations survive the rounding: the module measures both. The threshold is calibrated on clean held-out digits for a 5% false-positive
budget, then applied to clean test digits and to FGSM and PGD examples that fooled the model.

Those attackers do not know the detector. The adaptive attacker does (Kerckhoffs; He et al. 2017
broke feature squeezing this way): PGD on the model and the squeezed model together, with the
rounding passed straight through for the gradient (BPDA), pushing both to a wrong answer so the
squeeze score (their disagreement) stays low. It is run over a range of budgets, and the module reports the
smallest budget at which half the digits are fooled and pass the detector. Hard negatives: clean digits with sensor
noise (what a worn scanner sends), scored against the same threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from digits_lab import DigitsCNN, fgsm, load_split, pgd, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

EPOCHS = run.pick(full=30, smoke=3)
PGD_STEPS = run.pick(full=20, smoke=3)
TARGET_FPR = 0.05
ATTACKS = [("fgsm", 0.1), ("fgsm", 0.2), ("pgd", 0.1), ("pgd", 0.2)]
ADAPTIVE_EPS = [0.05, 0.1, 0.15, 0.2, 0.3]
ADAPTIVE_STEPS = run.pick(full=40, smoke=5)
SENSOR_NOISE = 0.05  # std of the Gaussian noise on the hard-negative digits


def squeeze_bits(x: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """Reduce colour depth to 2**bits levels. Two bits keep the digit readable (the squeezed model
    loses about one point of accuracy) while rounding away perturbations smaller than half a level."""
    levels = 2**bits - 1
    return torch.round(x * levels) / levels


@torch.no_grad()
def squeeze_score(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """L1 distance between the softmax of the input and of its squeezed version (0 to 2)."""
    return (F.softmax(model(x), 1) - F.softmax(model(squeeze_bits(x)), 1)).abs().sum(1).cpu().numpy()


def adaptive_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                 seed: int) -> torch.Tensor:
    """PGD against model and detector together: raise the loss of the true label on the input and
    on its squeezed version at once (rounding passed straight through, BPDA), so the squeezed input
    is as wrong as the raw one and the squeeze score, which measures their disagreement, stays low.
    (A penalty on the score itself was tried as well: it kept the score low by failing to fool the
    model, and fooled fewer digits for the same budget.)"""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    alpha = 2.5 * eps / steps
    adv = (x + (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        squeezed = adv + (squeeze_bits(adv) - adv).detach()  # BPDA: identity gradient through round()
        logits, logits_sq = model(adv), model(squeezed)
        loss = F.cross_entropy(logits, y) + F.cross_entropy(logits_sq, y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def plot(clean: np.ndarray, adv: np.ndarray, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(0, 2, 41)
    ax.hist(clean, bins=bins, alpha=0.6, label="clean test digits", density=True)
    ax.hist(adv, bins=bins, alpha=0.6, label="PGD eps=0.1 (fooled the model)", density=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold (clean FPR budget {TARGET_FPR:.0%})")
    ax.set_xlabel("feature-squeezing score (L1 between softmaxes)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("Feature squeezing separates adversarial from clean digits")
    run.figure(fig, "squeeze-score-histogram")


def main() -> None:
    x_tr, y_tr, x_te, y_te = load_split(run.seed, device)
    # a clean calibration set the model never trained on sets the threshold
    idx_fit, idx_cal = train_test_split(np.arange(len(x_tr)), test_size=0.15, stratify=y_tr.cpu().numpy(),
                                        random_state=run.seed)
    x_fit, y_fit = x_tr[idx_fit], y_tr[idx_fit]
    x_cal = x_tr[idx_cal]
    model = train(DigitsCNN().to(device), x_fit, y_fit, epochs=EPOCHS, seed=run.seed, log=run.log)

    cal_scores = squeeze_score(model, x_cal)
    threshold = float(np.quantile(cal_scores, 1 - TARGET_FPR))
    clean_scores = squeeze_score(model, x_te)
    fpr = float((clean_scores > threshold).mean())
    with torch.no_grad():
        clean_acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    run.metric("clean_accuracy", clean_acc)
    run.metric("threshold", threshold)
    run.metric("false_positive_rate", fpr)
    run.log("detector.calibrated", squeezer="bit_depth_2", threshold=round(threshold, 4),
            calibration_samples=len(x_cal), clean_test_fpr=round(fpr, 4))

    headline_adv_scores = clean_scores
    for attack, eps in ATTACKS:
        adv = fgsm(model, x_te, y_te, eps) if attack == "fgsm" else pgd(model, x_te, y_te, eps, PGD_STEPS, seed=run.seed + 1)
        with torch.no_grad():
            fooled = (model(adv).argmax(1) != y_te) & (model(x_te).argmax(1) == y_te)
        scores = squeeze_score(model, adv[fooled])
        rate = float((scores > threshold).mean()) if len(scores) else 0.0
        labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(scores))]
        auc = float(roc_auc_score(labels, np.r_[clean_scores, scores])) if len(scores) else 0.5
        key = f"{attack}_eps_{eps:g}".replace(".", "_")
        run.metric(f"{key}.detection_rate", rate)
        run.metric(f"{key}.auc", auc)
        run.metric(f"{key}.adversarial_samples", int(fooled.sum()))
        run.log("detector.result", attack=attack, eps=eps, adversarial_samples=int(fooled.sum()),
                detected=int((scores > threshold).sum()), detection_rate=round(rate, 4), auc=round(auc, 4))
        if (attack, eps) == ("pgd", 0.1):
            headline_adv_scores = scores
    run.metric("detection_rate", run.metrics["pgd_eps_0_1"]["detection_rate"])  # the headline: PGD at eps 0.1

    # hard negatives: clean digits with sensor noise; any flag is a false alarm
    gen = torch.Generator(device=device).manual_seed(run.seed + 7)
    noisy = (x_te + SENSOR_NOISE * torch.randn(x_te.shape, generator=gen, device=device)).clamp(0, 1)
    noisy_fpr = float((squeeze_score(model, noisy) > threshold).mean())
    run.metric("hard_negative.sensor_noise", SENSOR_NOISE)
    run.metric("hard_negative.false_positive_rate", noisy_fpr)
    run.log("detector.hard_negatives", kind="sensor_noise", std=SENSOR_NOISE, samples=len(noisy),
            false_positive_rate=round(noisy_fpr, 4))

    # the adaptive attacker, over a range of budgets
    breaking = None
    with torch.no_grad():
        correct = model(x_te).argmax(1) == y_te
    for eps in ADAPTIVE_EPS:
        adv = adaptive_pgd(model, x_te, y_te, eps, ADAPTIVE_STEPS, seed=run.seed + 2)
        with torch.no_grad():
            fooled = (model(adv).argmax(1) != y_te) & correct
        scores = squeeze_score(model, adv[fooled])
        rate = float((scores > threshold).mean()) if len(scores) else 0.0
        evaded = float(int(fooled.sum()) - int((scores > threshold).sum())) / max(int(correct.sum()), 1)
        key = "adaptive.eps_" + f"{eps:g}".replace(".", "_")
        run.metric(f"{key}.detection_rate", rate)
        run.metric(f"{key}.fooled_rate", float(fooled.sum()) / max(int(correct.sum()), 1))
        run.metric(f"{key}.evasion_rate", evaded)  # fooled the model and passed the detector
        run.log("detector.adaptive", eps=eps, steps=ADAPTIVE_STEPS, adversarial_samples=int(fooled.sum()),
                detected=int((scores > threshold).sum()), detection_rate=round(rate, 4),
                fooled_and_undetected=round(evaded, 4))
        if breaking is None and evaded >= 0.5:
            breaking = eps
    # the smallest budget at which the adaptive attacker turns at least half of the correctly
    # classified digits into wrong answers the detector passes (the largest budget tried plus one
    # step if it never does)
    run.metric("adaptive.breaking_eps", breaking if breaking is not None else ADAPTIVE_EPS[-1] + 0.1)
    plot(clean_scores, headline_adv_scores, threshold)
    run.finish()


if __name__ == "__main__":
    main()
