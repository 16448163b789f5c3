"""Black-box model inversion of a digits classifier API, per output mode, and the label-only control.

scikit-learn's digits are split in two halves. The victim, a small MLP, is trained on one half and
served through a prediction API that returns full probability vectors, the top-1 label with its
confidence, probabilities rounded to one decimal, or the label only. The attacker knows the input
format (8x8 images, pixels in [0, 1]) and the class names, and nothing else: no training data, no
weights. For each class it starts from a neutral grey image and climbs the class's log-odds as the
API reports it, estimating the gradient from queries (Fredrikson et al., CCS 2015, with zeroth-order
gradient estimates), inside the pixel box and under a smoothness prior. A white-box attacker (the
victim's exact gradient, same prior and steps) is the upper bound.

Judged by what the attacker never touched: an evaluator (an RBF SVM trained on the OTHER half) says
whether a reconstruction shows the target digit; the reconstruction is correlated with that half's
class mean image, in its class-specific part (class mean minus the mean of all digits), against two
baselines (the grey start and another class's true mean image). Queries used are counted by the API.

Control: label-only (and, for comparison, coarsened) output, measured as the drop in recognition,
against an attacker that adapts to it (larger probes); its cost is what a benign caller of the API
loses on held-out digits: top-3 answers, calibration (ECE, Brier score) and the ability to tell
likely-wrong answers from confidence (error AUROC).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch  # imported before kit.start so the kit seeds it

from fmbuild.evidence import kit
from inversion import (MODES, PIXELS, PredictionAPI, caller_utility, correlation, invert, nearest_mean, probabilities,
                       train_mlp, white_box_gradient)

HIDDEN = 64
WEIGHT_DECAY = 1e-2
DIRECTIONS = 20      # random probe directions per step (2 queries each, antithetic)
SIGMA = 0.1          # probe size in pixel units
ADAPTIVE_SIGMA = 0.3 # the label-only attacker's larger probes
LR = 0.1
PRIOR = 0.05         # weight of the smoothness prior
PATIENCE = 15        # steps without improvement before a run stops
START = 0.5          # the neutral grey starting image
TOP_K = 3

BUDGETS = (200, 400, 800, 1600)  # queries per reconstruction for the budget curve

ATTACKS = {           # name -> (API mode, probe size, smoothed reading); "white_box" uses the victim's gradient
    "white_box": ("full", None, False),
    "full": ("full", SIGMA, False),
    "top1": ("top1", SIGMA, False),
    "rounded": ("rounded", SIGMA, False),
    "label": ("label", SIGMA, False),
    "label_adaptive": ("label", ADAPTIVE_SIGMA, True),
}


def main() -> None:
    run = kit.start(__file__)
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    steps = run.pick(full=80, smoke=8)
    restarts = run.pick(full=5, smoke=1)
    epochs = run.pick(full=200, smoke=40)
    if run.device == "cuda":
        run.log("device.note", detail="an 8x8 MLP and an SVM: the module runs on the CPU")

    rng = np.random.default_rng(run.seed)
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    order = rng.permutation(len(y))
    half_v, half_e = order[: len(y) // 2], order[len(y) // 2:]
    xv, yv, xe, ye = x[half_v], y[half_v], x[half_e], y[half_e]
    classes = int(y.max()) + 1
    run.log("data.split", dataset="sklearn digits", victim_half=len(half_v), evaluator_half=len(half_e), pixels=PIXELS)

    victim = train_mlp(xv, yv, epochs=epochs, hidden=HIDDEN, weight_decay=WEIGHT_DECAY, seed=run.seed)
    p_held = probabilities(victim, xe)
    evaluator = SVC(gamma="scale", C=10.0).fit(xe, ye)
    victim_acc = float(np.mean(p_held.argmax(1) == ye))
    evaluator_acc = float(np.mean(evaluator.predict(xv) == yv))
    run.metric("victim.heldout_accuracy", round(victim_acc, 4))
    run.metric("evaluator.accuracy_on_victim_half", round(evaluator_acc, 4))
    run.log("model.trained", victim=f"MLP 64-{HIDDEN}-10, weight decay {WEIGHT_DECAY}", victim_heldout_accuracy=round(victim_acc, 4),
            evaluator="RBF SVM on the other half", evaluator_accuracy=round(evaluator_acc, 4))

    means = np.stack([xe[ye == c].mean(0) for c in range(classes)])
    specific = means - xe.mean(0)   # what sets each class apart from "a digit"
    targets = np.tile(np.arange(classes), restarts)

    def judge(images: np.ndarray) -> dict:
        return {
            "recognition_rate": float(np.mean(evaluator.predict(images) == targets)),
            "nearest_mean_rate": float(np.mean(nearest_mean(images, means) == targets)),
            "specific_correlation": float(np.mean(correlation(images, specific[targets]))),
            "pixel_correlation": float(np.mean(correlation(images, means[targets]))),
        }

    # Baselines: the grey start, and the true mean image of another (random) class.
    other = (targets + rng.integers(1, classes, size=len(targets))) % classes
    baselines = {"start_image": np.full((len(targets), PIXELS), START), "random_class_mean": means[other]}
    for name, images in baselines.items():
        for key, value in judge(images).items():
            run.metric(f"baseline.{name}.{key}", round(value, 4))
    run.metric("baseline.chance", round(1.0 / classes, 4))

    def attack(name: str, n_steps: int, salt: int):
        mode, sigma, smoothed = ATTACKS[name]
        api = PredictionAPI(victim, mode)
        inv = invert(api, targets, steps=n_steps, directions=DIRECTIONS, sigma=sigma or SIGMA, lr=LR, prior=PRIOR,
                     start=START, patience=PATIENCE, smoothed=smoothed, rng=np.random.default_rng([run.seed, salt]),
                     gradient=white_box_gradient(victim) if sigma is None else None)
        return api, inv

    results, images = {}, {}
    for name, (mode, sigma, smoothed) in ATTACKS.items():
        api, inv = attack(name, steps, len(results))
        res = judge(inv.images)
        res.update(queries_mean=float(inv.queries.mean()), queries_max=int(inv.queries.max()), api_queries=int(api.queries),
                   steps_mean=float(inv.steps.mean()),
                   victim_target_confidence=float(np.mean(probabilities(victim, inv.images)[np.arange(len(targets)), targets])))
        results[name], images[name] = res, inv.images
        for key, value in res.items():
            run.metric(f"attack.{name}.{key}", round(value, 4) if isinstance(value, float) else value)
        run.log("attack.inversion", attack=name, api_mode=mode, probe_sigma=sigma, smoothed_reading=smoothed, reconstructions=len(targets),
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()})
        if name == "full":
            evals = evaluator.predict(inv.images)
            for c in range(min(classes, 3)):
                run.log("attack.class_result", attack=name, target=c, queries=int(inv.queries[c]),
                        attacker_reads=round(float(inv.best_estimate[c]), 4), evaluator_says=int(evals[c]),
                        specific_correlation=round(float(correlation(inv.images[c:c + 1], specific[c:c + 1])[0]), 4))

    full = results["full"]
    for name, ref in (("label_only_naive", "label"), ("label_only_adaptive", "label_adaptive"), ("rounded", "rounded"),
                      ("top1", "top1")):
        run.metric(f"control.{name}.recognition_drop", round(full["recognition_rate"] - results[ref]["recognition_rate"], 4))
        run.metric(f"control.{name}.specific_correlation_drop",
                   round(full["specific_correlation"] - results[ref]["specific_correlation"], 4))
        run.metric(f"control.{name}.nearest_mean_drop", round(full["nearest_mean_rate"] - results[ref]["nearest_mean_rate"], 4))
    run.metric("attack.full_vs_white_box.recognition_gap",
               round(results["white_box"]["recognition_rate"] - full["recognition_rate"], 4))
    run.log("control.label_only", full_recognition=round(full["recognition_rate"], 4),
            naive_recognition=round(results["label"]["recognition_rate"], 4),
            adaptive_recognition=round(results["label_adaptive"]["recognition_rate"], 4),
            adaptive_queries_mean=round(results["label_adaptive"]["queries_mean"], 1),
            full_queries_mean=round(full["queries_mean"], 1))

    # Recognition against the query budget an attacker gets per reconstruction.
    curve, spec_at = {}, {}
    budgets = BUDGETS if not run.smoke else BUDGETS[:2]
    for name in ("full", "label_adaptive"):
        curve[name] = []
        for budget in budgets:
            _, inv = attack(name, steps_within(name, budget), 100 + budget)
            if inv.queries.max() > budget:
                raise SystemExit(f"{name}: {inv.queries.max()} queries over the budget of {budget}")
            rec = float(np.mean(evaluator.predict(inv.images) == targets))
            spec = float(np.mean(correlation(inv.images, specific[targets])))
            curve[name].append(rec)
            spec_at[name, budget] = spec
            run.metric(f"budget.{name}.q{budget}.recognition_rate", round(rec, 4))
            run.metric(f"budget.{name}.q{budget}.specific_correlation", round(spec, 4))
            run.log("attack.budget", attack=name, budget=budget, queries_mean=round(float(inv.queries.mean()), 1),
                    recognition_rate=round(rec, 4), specific_correlation=round(spec, 4))

    for budget in budgets:
        run.metric(f"budget.q{budget}.label_only_recognition_drop",
                   round(run.metrics["budget"]["full"][f"q{budget}"]["recognition_rate"]
                         - run.metrics["budget"]["label_adaptive"][f"q{budget}"]["recognition_rate"], 4))
        run.metric(f"budget.q{budget}.label_only_specific_correlation_drop",
                   round(spec_at["full", budget] - spec_at["label_adaptive", budget], 4))

    # What a benign caller loses, on the held-out half (digits the victim never saw).
    utility = {}
    for mode in MODES:
        u = caller_utility(p_held, ye, mode, k=TOP_K)
        utility[mode] = u
        for key, value in u.items():
            run.metric(f"utility.{mode}.{key}", round(value, 4))
        run.log("utility.caller", api_mode=mode, heldout=len(ye), **{k: round(v, 4) for k, v in u.items()})
    lab = utility["label"]
    run.metric("utility.label_only.top_k_loss", round(utility["full"]["top_k"] - lab["top_k"], 4))
    run.metric("utility.label_only.error_auroc_loss", round(utility["full"]["error_auroc"] - lab["error_auroc"], 4))
    run.metric("utility.label_only.selective_accuracy_loss",
               round(utility["full"]["selective_accuracy"] - lab["selective_accuracy"], 4))
    run.metric("utility.label_only.accuracy_change", round(lab["accuracy"] - utility["full"]["accuracy"], 4))
    run.metric("settings.steps", steps)
    run.metric("settings.restarts", restarts)
    run.metric("settings.reconstructions", len(targets))
    run.metric("settings.directions", DIRECTIONS)

    plot_reconstructions(run, means, images, classes)
    plot_summary(run, results, utility, curve, budgets)
    run.finish()


def steps_within(name: str, budget: int) -> int:
    """The most steps an attack can take without going over `budget` queries per reconstruction."""
    _, sigma, smoothed = ATTACKS[name]
    if smoothed:                      # every iteration (steps + 1 of them) reads from its probes
        return budget // (2 * DIRECTIONS) - 1
    return (budget - 1) // (2 * DIRECTIONS + 1)


ROW_NAMES = {"white_box": "white-box\n(gradient)", "full": "black-box\nfull probs", "top1": "black-box\ntop-1 + conf.",
             "rounded": "black-box\nrounded 0.1", "label": "black-box\nlabel only", "label_adaptive": "label only,\nadaptive"}


def plot_reconstructions(run: kit.Run, means: np.ndarray, images: dict, classes: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("held-out\nclass mean", means)] + [(ROW_NAMES[n], images[n][:classes]) for n in ATTACKS]
    fig, axes = plt.subplots(len(rows), classes, figsize=(classes * 0.9 + 1.2, len(rows) * 0.95))
    for r, (label, imgs) in enumerate(rows):
        for c in range(classes):
            ax = axes[r, c]
            ax.imshow(imgs[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(c), fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"Model inversion from a grey start, one reconstruction per class (seed {run.seed})", fontsize=9)
    run.figure(fig, "inversion-reconstructions")


def plot_summary(run: kit.Run, results: dict, utility: dict, curve: dict, budgets) -> None:
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    xs = np.arange(len(names))
    axes[0].bar(xs - 0.2, [results[n]["recognition_rate"] for n in names], width=0.4, label="evaluator recognises target")
    axes[0].bar(xs + 0.2, [results[n]["specific_correlation"] for n in names], width=0.4, label="class-specific correlation")
    axes[0].axhline(0.1, color="grey", ls=":", lw=1, label="chance recognition")
    axes[0].set_xticks(xs, [ROW_NAMES[n].replace("black-box\n", "").replace("\n", " ") for n in names], fontsize=7, rotation=20)
    axes[0].set_title("Inversion per API output")
    axes[0].set_ylim(0, 1.25)
    axes[0].legend(fontsize=7, loc="upper center", ncol=2)
    for name, rates in curve.items():
        axes[1].plot(range(len(budgets)), rates, marker="o", label=ROW_NAMES[name].replace("\n", " "))
    axes[1].axhline(0.1, color="grey", ls=":", lw=1)
    axes[1].set_xticks(range(len(budgets)), [str(b) for b in budgets])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("queries per reconstruction")
    axes[1].set_ylabel("evaluator recognises target")
    axes[1].set_title("Recognition against the query budget")
    axes[1].legend(fontsize=7)
    modes = list(utility)
    mx = np.arange(len(modes))
    for off, key, label in ((-0.27, "top_k", f"top-{TOP_K} accuracy"), (0, "selective_accuracy", "accuracy on the 90% most confident"),
                            (0.27, "error_auroc", "error AUROC of confidence")):
        axes[2].bar(mx + off, [utility[m][key] for m in modes], width=0.27, label=label)
    axes[2].set_xticks(mx, modes)
    axes[2].set_ylim(0.4, 1.12)
    axes[2].set_title("What a benign caller gets, held-out digits")
    axes[2].legend(fontsize=7, loc="upper center", ncol=2)
    run.figure(fig, "inversion-vs-utility")


if __name__ == "__main__":
    main()
