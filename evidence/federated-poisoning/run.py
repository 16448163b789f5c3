"""Poisoning federated training through malicious client updates, and robust aggregation rules.

Twenty clients train a 64-32-10 MLP on scikit-learn's digits by federated averaging, on an IID
split and on a label-skewed (two classes per client) split. Four of them (20%) are the
attacker's. Attacks: sign-flipped scaled updates (untargeted), and a four-pixel trigger backdoor
to class 0, trained locally and either boosted to replace the global model or held inside the
norm of an honest update. Aggregators: FedAvg, coordinate-wise median, trimmed mean, median-norm
clipping, clipping + Gaussian noise, Krum. Every aggregator x attack x split is measured: clean
test accuracy and backdoor success (triggered test images of the other classes classified as 0),
after the last round and per round, plus each rule's cost with no attacker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# One BLAS thread: the matrices are tiny, and on a shared 2-core machine OpenBLAS threads spin
# against each other (measured 4x slower with the default thread count).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from fmbuild.evidence import kit
from fedlab import AGGREGATORS, ATTACKS, TARGET_CLASS, TRIGGER_PIXELS, FedConfig, LocalConfig, federate, split_iid, split_label_skew

CLIENTS = 20
MALICIOUS = 4
TEST_SHARE = 0.3
ROBUST = ("median", "trimmed_mean")
# (split, aggregator, attack) -> the rounds whose server view is logged, in this order (-1: the last)
SERVER_LOG = {("iid", "fedavg", "backdoor_boost"): (1,), ("iid", "clip", "backdoor_bounded"): (1,),
              ("iid", "median", "backdoor_bounded"): (1,), ("noniid", "krum", "backdoor_bounded"): (-1,)}


def main() -> None:
    run = kit.start(__file__)
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    rng = np.random.default_rng(run.seed)
    order = rng.permutation(len(y))
    n_test = int(round(TEST_SHARE * len(y)))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if run.smoke:
        train_idx = train_idx[:400]
        test_idx = test_idx[:200]
    test = (X[test_idx], y[test_idx])
    splits = {"iid": split_iid(X[train_idx], y[train_idx], CLIENTS, rng),
              "noniid": split_label_skew(X[train_idx], y[train_idx], CLIENTS, rng)}
    cfg = FedConfig(rounds=run.pick(full=60, smoke=3), malicious=MALICIOUS, f=MALICIOUS, local=LocalConfig())
    trigger_on_clean = float(np.mean(np.any(X[train_idx][:, list(TRIGGER_PIXELS)] > 0, axis=1)))
    run.log("data.loaded", dataset="sklearn digits", train=len(train_idx), test=len(test_idx), clients=CLIENTS,
            malicious=MALICIOUS, rounds=cfg.rounds, trigger_pixels=list(TRIGGER_PIXELS), target_class=TARGET_CLASS,
            train_images_with_any_trigger_pixel_on=round(trigger_on_clean, 4))
    for name, cl in splits.items():
        classes = [int(len(np.unique(cl.y[i, : cl.n[i]]))) for i in range(cl.k)]
        run.log("data.split", split=name, clients=cl.k, samples_per_client=[int(v) for v in cl.n],
                classes_per_client=classes)
        run.metric(f"settings.{name}.median_classes_per_client", float(np.median(classes)))
    run.metric("settings.clients", CLIENTS)
    run.metric("settings.malicious", MALICIOUS)
    run.metric("settings.rounds", cfg.rounds)
    run.metric("settings.test_images", len(test_idx))
    run.metric("settings.trigger_pixels_on_in_clean_train", round(trigger_on_clean, 4))
    if run.device == "cuda":
        run.log("device.note", detail="numpy module: runs on the CPU")

    results: dict[tuple[str, str, str], dict] = {}
    curves: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    server_log: dict[tuple[str, str, str], list[dict]] = {}
    for split, clients in splits.items():
        for agg in AGGREGATORS:
            for attack in ATTACKS:
                key = (split, agg, attack)
                hist = federate(agg, attack, clients, test, cfg, seed=run.seed * 1000 + 17,
                                log_at=tuple(cfg.rounds if r == -1 else r for r in SERVER_LOG.get(key, ())))
                res = {"clean_accuracy": hist.accuracy[-1], "backdoor_success": hist.backdoor[-1],
                       "backdoor_success_max": max(hist.backdoor),
                       "norm_flag_malicious_rate": hist.norm_flag_malicious_rate,
                       "norm_flag_honest_rate": hist.norm_flag_honest_rate}
                results[key] = res
                curves[key] = (hist.accuracy, hist.backdoor)
                if key in SERVER_LOG:
                    server_log[key] = hist.rounds_log
                if agg == "krum" and attack != "none":
                    run.metric(f"{split}.krum.{attack}.malicious_selected_rate", round(hist.krum_malicious_picks / cfg.rounds, 4))
                for k, v in res.items():
                    run.metric(f"{split}.{agg}.{attack}.{k}", round(v, 4))
                run.log("fl.result", split=split, aggregator=agg, attack=attack, rounds=cfg.rounds,
                        **{k: round(v, 4) for k, v in res.items()})
    for key in SERVER_LOG:
        for line in server_log[key]:
            run.log("server.round", split=key[0], **line)

    # Costs with no attacker, against plain FedAvg on the same split.
    for split in splits:
        base = results[(split, "fedavg", "none")]["clean_accuracy"]
        for agg in AGGREGATORS:
            cost = base - results[(split, agg, "none")]["clean_accuracy"]
            run.metric(f"{split}.{agg}.no_attack_cost", round(cost, 4))
        run.log("fl.cost", split=split, fedavg_accuracy=round(base, 4),
                **{agg: round(base - results[(split, agg, "none")]["clean_accuracy"], 4) for agg in AGGREGATORS})
    backdoors = ("backdoor_boost", "backdoor_bounded")
    run.metric("iid.robust_max_backdoor_success", round(max(results[("iid", a, b)]["backdoor_success"] for a in ROBUST for b in backdoors), 4))
    run.metric("iid.robust_min_signflip_accuracy", round(min(results[("iid", a, "signflip")]["clean_accuracy"] for a in ROBUST), 4))
    run.metric("iid.robust_max_no_attack_cost", round(max(results[("iid", "fedavg", "none")]["clean_accuracy"] - results[("iid", a, "none")]["clean_accuracy"] for a in ROBUST), 4))
    run.metric("noniid.robust_min_no_attack_cost", round(min(results[("noniid", "fedavg", "none")]["clean_accuracy"] - results[("noniid", a, "none")]["clean_accuracy"] for a in ROBUST), 4))
    run.metric("clip_min_backdoor_success", round(min(results[(s, c, b)]["backdoor_success"] for s in splits for c in ("clip", "clip_noise") for b in backdoors), 4))
    # Baseline: how often the trigger alone sends images to class 0 in the attack-free FedAvg model.
    # (A collapsed model, such as Krum's on the skewed split, can put many images in class 0 with
    # no attacker at all; its backdoor success means nothing.)
    run.metric("baseline_backdoor_success_max", round(max(results[(s, "fedavg", "none")]["backdoor_success"] for s in splits), 4))

    plot_rounds(run, curves, cfg.rounds)
    plot_summary(run, results)
    run.finish()


LABELS = {"fedavg": "FedAvg", "median": "median", "trimmed_mean": "trimmed mean", "clip": "norm clip",
          "clip_noise": "clip + noise", "krum": "Krum"}


SHORT = {"none": "none", "signflip": "sign-flip", "backdoor_boost": "boosted bd", "backdoor_bounded": "bounded bd"}


def plot_rounds(run: kit.Run, curves: dict, rounds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("iid", "signflip", 0, "clean accuracy, IID, sign-flip x4"),
              ("iid", "backdoor_boost", 1, "backdoor success, IID, boosted backdoor"),
              ("iid", "backdoor_bounded", 1, "backdoor success, IID, norm-bounded backdoor"),
              ("noniid", "none", 0, "clean accuracy, label-skewed, no attacker"),
              ("noniid", "backdoor_bounded", 1, "backdoor success, label-skewed, norm-bounded"),
              ("noniid", "backdoor_boost", 0, "clean accuracy, label-skewed, boosted backdoor")]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), sharex=True)
    x = np.arange(1, rounds + 1)
    for ax, (split, attack, which, title) in zip(axes.ravel(), panels):
        for agg in AGGREGATORS:
            ax.plot(x, curves[(split, agg, attack)][which], label=LABELS[agg], lw=1.6,
                    ls="--" if agg in ("clip", "clip_noise") else "-")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("round")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Federated training of a digits MLP, 20 clients, 4 malicious (seed {run.seed})")
    fig.tight_layout()
    run.figure(fig, "fl-per-round")


def plot_summary(run: kit.Run, results: dict) -> None:
    import matplotlib.pyplot as plt

    cols = [(s, a) for s in ("iid", "noniid") for a in ATTACKS]
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.2))
    for ax, metric, cmap, title in ((axes[0], "clean_accuracy", "RdYlGn", "clean test accuracy after the last round"),
                                    (axes[1], "backdoor_success", "RdYlGn_r", "backdoor success (triggered, other classes -> 0)")):
        grid = np.array([[results[(s, g, a)][metric] for s, a in cols] for g in AGGREGATORS])
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_yticks(range(len(AGGREGATORS)), [LABELS[g] for g in AGGREGATORS])
        ax.set_xticks(range(len(cols)), [f"{s}\n{SHORT[a]}" for s, a in cols], fontsize=7)
        ax.axvline(len(ATTACKS) - 0.5, color="black", lw=1.5)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Aggregator x attack x split (seed {run.seed}; bd = backdoor; a collapsed model's backdoor success means nothing)")
    fig.tight_layout()
    run.figure(fig, "fl-summary")


if __name__ == "__main__":
    main()
