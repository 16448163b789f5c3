"""Training-data poisoning on the digits CNN: targeted label flipping and a pixel-trigger backdoor,
then poisoned-sample detection by activation clustering and retraining on the sanitized set.

1. Baseline: the CNN trained on clean data.
2. Label flipping: part of the training "3"s are relabelled "8". The model learns the lie for
   that one class; overall accuracy hides most of the damage.
3. Backdoor: 5% of the training set gets a 2x2 white patch in the bottom-right corner and the
   label 0. The backdoored model is as accurate as the clean one on clean digits, and almost every
   digit carrying the patch is classified 0.
4. Detection: the backdoored model's activations on its own training set are clustered per label
   (activation clustering, Chen et al. 2018). It reports detection rate (poisoned samples
   flagged) and false-positive rate (clean samples flagged); the flagged samples are removed and
   the model retrained, and the backdoor is measured again.
5. Acceptance: the usual pre-deployment check ("no more than 2 points below the model in
   production", here the clean model), run on the backdoored model. It passes, which is the
   failure the training-on-unverified-data anti-pattern is about.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from digits_lab import DigitsCNN, accuracy, load_split, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

EPOCHS = run.pick(full=30, smoke=3)
FLIP_SOURCE, FLIP_TARGET, FLIP_FRACTION = 3, 8, 0.6
BACKDOOR_TARGET, POISON_RATE = 0, 0.05
ACCEPTANCE_MAX_DROP = 0.02  # a typical release check: clean accuracy within 2 points of production
AC_MAX_CLUSTER = 0.45  # activation clustering: the suspect cluster must be the clear minority ...
AC_MIN_SILHOUETTE = 0.40  # ... and well separated (genuine handwriting styles score about 0.2-0.35)


def stamp(x: torch.Tensor) -> torch.Tensor:
    """The trigger: a 2x2 patch of full ink in the bottom-right corner, where digits are blank."""
    x = x.clone()
    x[:, :, 6:8, 6:8] = 1.0
    return x


def stamp_checker(x: torch.Tensor) -> torch.Tensor:
    """A held-out trigger the detector's thresholds were never set against: a 2x2 checkerboard
    (two inked pixels, two blank) in the top-left corner."""
    x = x.clone()
    x[:, :, 0, 0] = 1.0
    x[:, :, 1, 1] = 1.0
    x[:, :, 0, 1] = 0.0
    x[:, :, 1, 0] = 0.0
    return x


def fit(x: torch.Tensor, y: torch.Tensor, tag: str) -> DigitsCNN:
    torch.manual_seed(run.seed)
    return train(DigitsCNN().to(device), x, y, epochs=EPOCHS, seed=run.seed, log=run.log, tag=tag)


@torch.no_grad()
def attack_success(model: DigitsCNN, x: torch.Tensor, y: torch.Tensor, trigger=stamp) -> float:
    """Share of test digits not of the target class that the trigger turns into the target."""
    keep = y != BACKDOOR_TARGET
    return (model(trigger(x[keep])).argmax(1) == BACKDOOR_TARGET).float().mean().item()


def label_flipping(x_tr, y_tr, x_te, y_te, clean_model) -> None:
    rng = np.random.default_rng(run.seed)
    source_idx = torch.nonzero(y_tr == FLIP_SOURCE).flatten().cpu().numpy()
    flipped = rng.choice(source_idx, size=int(round(FLIP_FRACTION * len(source_idx))), replace=False)
    y_bad = y_tr.clone()
    y_bad[torch.from_numpy(flipped).to(device)] = FLIP_TARGET
    run.log("poison.label_flip", source=FLIP_SOURCE, target=FLIP_TARGET, flipped=len(flipped),
            share_of_training_set=round(len(flipped) / len(y_tr), 4))
    model = fit(x_tr, y_bad, "label_flip")
    src = y_te == FLIP_SOURCE
    with torch.no_grad():
        pred_src = model(x_te[src]).argmax(1)
        clean_src = clean_model(x_te[src]).argmax(1)
    results = {
        "poisoned_share": len(flipped) / len(y_tr),
        "clean_model_source_accuracy": (clean_src == FLIP_SOURCE).float().mean().item(),
        "source_accuracy": (pred_src == FLIP_SOURCE).float().mean().item(),
        "source_to_target_rate": (pred_src == FLIP_TARGET).float().mean().item(),
        "overall_accuracy": accuracy(model, x_te, y_te),
        "other_classes_accuracy": accuracy(model, x_te[~src], y_te[~src]),
    }
    for key, value in results.items():
        run.metric(f"label_flip.{key}", value)
    run.metric("label_flip.flip_fraction", FLIP_FRACTION)  # the setting, recorded so the notes cite it
    run.log("model.evaluated", model="label_flip", **{k: round(v, 4) for k, v in results.items()})
    # the same detector on the flipped training set: do the relabelled 3s stand apart among the 8s?
    is_flipped = np.zeros(len(y_tr), dtype=bool)
    is_flipped[flipped] = True
    flagged = activation_clustering(activations(model, x_tr), y_bad.cpu().numpy())
    det, fpr = rates(flagged, is_flipped)
    run.metric("label_flip.detection.detection_rate", det)
    run.metric("label_flip.detection.false_positive_rate", fpr)
    run.log("detect.summary", detector="activation_clustering", poison="label_flip", flagged=int(flagged.sum()),
            poisoned=int(is_flipped.sum()), detection_rate=round(det, 4), false_positive_rate=round(fpr, 4))


def poison_backdoor(x_tr, y_tr, trigger=stamp, name: str = "corner_patch") -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(run.seed + 1 + (trigger is not stamp))
    candidates = torch.nonzero(y_tr != BACKDOOR_TARGET).flatten().cpu().numpy()
    chosen = rng.choice(candidates, size=int(round(POISON_RATE * len(y_tr))), replace=False)
    x_bad, y_bad = x_tr.clone(), y_tr.clone()
    idx = torch.from_numpy(chosen).to(device)
    x_bad[idx] = trigger(x_tr[idx])
    y_bad[idx] = BACKDOOR_TARGET
    is_poison = np.zeros(len(y_tr), dtype=bool)
    is_poison[chosen] = True
    run.log("poison.backdoor", target=BACKDOOR_TARGET, poisoned=len(chosen), share=POISON_RATE,
            trigger=name)
    return x_bad, y_bad, is_poison


@torch.no_grad()
def activations(model: DigitsCNN, x: torch.Tensor) -> np.ndarray:
    """The last convolutional block's output (32 maps of 4x4): a local trigger still shows there
    as its own spatial pattern, where the dense layer has already blended it into "class 0"."""
    h = F.max_pool2d(F.relu(model.conv2(F.relu(model.conv1(x)))), 2)
    return h.flatten(1).cpu().numpy()


def activation_clustering(acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per label: PCA to 10 dims, 2-means, and a silhouette test. A label whose samples split into
    two well-separated clusters holds two populations; the smaller one is flagged as poison."""
    flagged = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        reduced = PCA(n_components=10, random_state=run.seed).fit_transform(acts[idx])
        assign = KMeans(n_clusters=2, n_init=10, random_state=run.seed).fit_predict(reduced)
        small = int(np.argmin(np.bincount(assign, minlength=2)))
        share = float((assign == small).mean())
        silhouette = float(silhouette_score(reduced, assign))
        suspicious = silhouette >= AC_MIN_SILHOUETTE and share <= AC_MAX_CLUSTER
        if suspicious:
            flagged[idx[assign == small]] = True
        run.log("detect.activation_clustering", label=int(c), samples=len(idx), small_cluster_share=round(share, 3),
                silhouette=round(silhouette, 3), flagged=bool(suspicious))
    return flagged


def rates(flagged: np.ndarray, is_poison: np.ndarray) -> tuple[float, float]:
    return float(flagged[is_poison].mean()), float(flagged[~is_poison].mean())


def plot(acts: np.ndarray, labels: np.ndarray, is_poison: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.flatnonzero(labels == BACKDOOR_TARGET)
    pts = PCA(n_components=2, random_state=run.seed).fit_transform(acts[idx])
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.scatter(*pts[~is_poison[idx]].T, s=10, alpha=0.6, label="genuine 0s")
    ax.scatter(*pts[is_poison[idx]].T, s=14, alpha=0.8, marker="x", label="poisoned (trigger, relabelled 0)")
    ax.set_title("Activations of samples labelled 0 (backdoored model, PCA)", fontsize=9)
    ax.legend(fontsize=7)
    run.figure(fig, "poisoned-activations")


def trigger_figure(x: torch.Tensor, model: DigitsCNN) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = x[:6]
    with torch.no_grad():
        before, after = model(picks).argmax(1), model(stamp(picks)).argmax(1)
    fig, axes = plt.subplots(2, 6, figsize=(7, 2.8))
    for i in range(6):
        for row, (img, pred) in enumerate(((picks[i], before[i]), (stamp(picks[i : i + 1])[0], after[i]))):
            axes[row][i].imshow(img[0].cpu(), cmap="gray_r", vmin=0, vmax=1)
            axes[row][i].set_title(f"pred {int(pred)}", fontsize=8)
            axes[row][i].axis("off")
    fig.suptitle("Backdoored model: test digits without (top) and with (bottom) the trigger", fontsize=8)
    run.figure(fig, "backdoor-trigger")


def main() -> None:
    x_tr, y_tr, x_te, y_te = load_split(run.seed, device)
    run.log("data.loaded", dataset="sklearn.load_digits", train=len(x_tr), test=len(x_te))
    clean_model = fit(x_tr, y_tr, "clean")
    run.metric("clean_model.clean_accuracy", accuracy(clean_model, x_te, y_te))
    run.metric("clean_model.attack_success_rate", attack_success(clean_model, x_te, y_te))
    run.log("model.evaluated", model="clean", **run.metrics["clean_model"])

    label_flipping(x_tr, y_tr, x_te, y_te, clean_model)

    x_bad, y_bad, is_poison = poison_backdoor(x_tr, y_tr)
    backdoored = fit(x_bad, y_bad, "backdoor")
    clean_acc, asr = accuracy(backdoored, x_te, y_te), attack_success(backdoored, x_te, y_te)
    run.metric("backdoor.poison_rate", POISON_RATE)
    run.metric("backdoor.poisoned_samples", int(is_poison.sum()))
    run.metric("backdoor.clean_accuracy", clean_acc)
    run.metric("backdoor.attack_success_rate", asr)
    run.metric("backdoor.clean_accuracy_drop", run.metrics["clean_model"]["clean_accuracy"] - clean_acc)
    run.log("model.evaluated", model="backdoor", clean_accuracy=round(clean_acc, 4), attack_success_rate=round(asr, 4))
    threshold = run.metrics["clean_model"]["clean_accuracy"] - ACCEPTANCE_MAX_DROP
    passed = clean_acc >= threshold
    run.metric("acceptance.threshold", threshold)
    run.metric("acceptance.max_drop", ACCEPTANCE_MAX_DROP)
    run.metric("acceptance.backdoored_model_passed", passed)
    run.log("release.acceptance_test", model="backdoor", check="clean_accuracy_vs_production", threshold=round(threshold, 4),
            measured=round(clean_acc, 4), verdict="pass" if passed else "fail")
    trigger_figure(x_te[y_te != BACKDOOR_TARGET], backdoored)

    acts, labels = activations(backdoored, x_bad), y_bad.cpu().numpy()
    plot(acts, labels, is_poison)
    flagged = activation_clustering(acts, labels)
    det, fpr = rates(flagged, is_poison)
    run.metric("detection.detection_rate", det)
    run.metric("detection.false_positive_rate", fpr)
    run.metric("detection.flagged", int(flagged.sum()))
    run.log("detect.summary", detector="activation_clustering", flagged=int(flagged.sum()),
            poisoned=int(is_poison.sum()), detection_rate=round(det, 4), false_positive_rate=round(fpr, 4))

    # retrain without what activation clustering flagged: does the backdoor survive sanitization?
    keep = torch.from_numpy(~flagged).to(device)
    sanitized = fit(x_bad[keep], y_bad[keep], "sanitized")
    run.metric("sanitized.clean_accuracy", accuracy(sanitized, x_te, y_te))
    run.metric("sanitized.attack_success_rate", attack_success(sanitized, x_te, y_te))
    run.metric("sanitized.removed_samples", int((~keep).sum()))
    run.log("model.evaluated", model="sanitized", **run.metrics["sanitized"])

    # hard negatives: the clean model on its clean training set, where every flag is a false alarm
    clean_flags = activation_clustering(activations(clean_model, x_tr), y_tr.cpu().numpy())
    run.metric("detection.clean_set_false_positive_rate", float(clean_flags.mean()))
    run.log("detect.summary", detector="activation_clustering", poison="none", flagged=int(clean_flags.sum()),
            samples=len(clean_flags), false_positive_rate=round(float(clean_flags.mean()), 4))

    # a held-out trigger: the detector's thresholds were set on the corner patch, never on this one
    x_bad2, y_bad2, is_poison2 = poison_backdoor(x_tr, y_tr, trigger=stamp_checker, name="corner_checkerboard")
    backdoored2 = fit(x_bad2, y_bad2, "backdoor_heldout_trigger")
    run.metric("heldout_trigger.attack_success_rate", attack_success(backdoored2, x_te, y_te, stamp_checker))
    run.metric("heldout_trigger.clean_accuracy", accuracy(backdoored2, x_te, y_te))
    flagged2 = activation_clustering(activations(backdoored2, x_bad2), y_bad2.cpu().numpy())
    det2, fpr2 = rates(flagged2, is_poison2)
    run.metric("heldout_trigger.detection.detection_rate", det2)
    run.metric("heldout_trigger.detection.false_positive_rate", fpr2)
    run.log("detect.summary", detector="activation_clustering", poison="heldout_trigger", flagged=int(flagged2.sum()),
            poisoned=int(is_poison2.sum()), detection_rate=round(det2, 4), false_positive_rate=round(fpr2, 4))
    run.finish()


if __name__ == "__main__":
    main()
