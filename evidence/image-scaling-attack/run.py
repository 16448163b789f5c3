"""Image-scaling attack per resize method, and the preprocessing controls.

Harmless-looking 64x64 images (scikit-learn digits, upscaled, with sensor noise) are modified only
where the serving pipeline's downscaler samples, so that its 8x8 output is another digit: a
classifier trained on the 8x8 images then predicts the attacker's class while the full-size image
still shows the original digit. Measured per resize method (torch F.interpolate and Pillow
filters): attack success, how much the full-size image changed, what a full-size viewer sees,
benign accuracy. Controls: an antialiasing / area resize, a check that flags images whose pipeline
downscale disagrees with a robust one (detection rate and false-positive rate), and for
training/serving preprocessing skew, one shared preprocessing function with a CI parity test.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch  # imported before kit.start so the kit seeds it

from fmbuild.evidence import kit
from scaling import METHODS, ScalingCheck, apply, craft, linearity_error, operator, parity, preprocess, psnr, within_budget

FULL = 64          # side of the image the pipeline receives
SMALL = 8          # side the model reads
VIEW = 16          # side of the full-size viewer's (area-downscaled) view
NOISE = 0.08       # sensor noise on the harmless images
BUDGET_DB = 25.0   # a stealth budget: the attacked image keeps PSNR >= 25 dB against the original
VULNERABLE = "torch_nearest"
ROBUST = "torch_area"
TRAIN_PIPELINE = "pillow_bilinear"   # what the training script used
PARITY_TOLERANCE = 1e-3


def main() -> None:
    run = kit.start(__file__)
    torch.set_num_threads(2)
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(run.seed)
    digits = load_digits()
    order = rng.permutation(len(digits.target))
    n_train = run.pick(full=1000, smoke=300)
    n_cal = run.pick(full=200, smoke=100)
    n_test = run.pick(full=500, smoke=120)
    n_attack = run.pick(full=300, smoke=40)
    idx_train, idx_cal, idx_test = np.split(order[: n_train + n_cal + n_test], [n_train, n_train + n_cal])
    full = to_full_size(digits.images / 16.0, rng)
    y = digits.target
    X_train, X_cal, X_test = full[idx_train], full[idx_cal], full[idx_test]
    y_train, y_test = y[idx_train], y[idx_test]
    run.log("data.loaded", dataset="sklearn digits", full_size=FULL, model_size=SMALL, train=len(idx_train),
            calibration=len(idx_cal), test=len(idx_test), noise=NOISE)
    run.metric("data.test_images", len(idx_test))
    run.metric("data.attack_images", n_attack)

    ops = {name: operator(fn, FULL, SMALL) for name, (fn, _) in METHODS.items()}
    for name, (fn, filters) in METHODS.items():
        err = linearity_error(fn, ops[name], X_test[:16])
        touched = int(np.count_nonzero(np.abs(ops[name]).sum(axis=0) > 1e-9))
        run.log("pipeline.resize_operator", method=name, antialias=filters, max_model_error=round(err, 8),
                full_size_columns_read=touched, of=FULL)
        run.metric(f"methods.{name}.pixels_read_fraction", round(touched ** 2 / FULL ** 2, 4))
        if err > 1e-4:
            raise SystemExit(f"{name}: resize is not L @ X @ L.T (error {err})")

    def fit(features: np.ndarray, labels: np.ndarray) -> LogisticRegression:
        return LogisticRegression(max_iter=3000, C=1.0).fit(features, labels)

    # The viewer: a classifier that looks at the full-size image (through a 16x16 area view), standing
    # in for a person or a moderation model that inspects the upload rather than the model's input.
    view_op = operator(METHODS[ROBUST][0], FULL, VIEW)
    viewer = fit(apply(view_op, X_train).reshape(len(X_train), -1), y_train)
    viewer_acc = float(np.mean(viewer.predict(apply(view_op, X_test).reshape(len(X_test), -1)) == y_test))
    run.metric("viewer.benign_accuracy", round(viewer_acc, 4))

    # The attack set: test images, each with a random other class and a target image of that class
    # taken from images the attacker holds (the training pool, not the victim's test image).
    src, src_y = X_test[:n_attack], y_test[:n_attack]
    tgt_y = (src_y + rng.integers(1, 10, size=n_attack)) % 10
    tgt = np.stack([X_train[rng.choice(np.flatnonzero(y_train == c))] for c in tgt_y])

    models, crafted = {}, {}
    summary = {}
    for name in METHODS:
        L = ops[name]
        model = fit(preprocess(X_train, L, "unit"), y_train)
        models[name] = model
        benign = float(np.mean(model.predict(preprocess(X_test, L, "unit")) == y_test))
        adv = craft(L, src, apply(L, tgt))
        crafted[name] = adv
        hit = model.predict(preprocess(adv, L, "unit")) == tgt_y
        seen = viewer.predict(apply(view_op, adv).reshape(n_attack, -1)) == src_y
        budget = within_budget(src, adv, BUDGET_DB)
        budget_hit = model.predict(preprocess(budget, L, "unit")) == tgt_y
        budget_seen = viewer.predict(apply(view_op, budget).reshape(n_attack, -1)) == src_y
        result = {
            "benign_accuracy": benign,
            "success_rate": float(np.mean(hit)),
            "viewer_sees_source_rate": float(np.mean(seen)),
            "stealthy_success_rate": float(np.mean(hit & seen)),
            "psnr_db": float(np.mean(psnr(src, adv))),
            "mean_abs_change": float(np.mean(np.abs(adv - src))),
            "budget_success_rate": float(np.mean(budget_hit & budget_seen)),
        }
        summary[name] = result
        for key, value in result.items():
            run.metric(f"attack.{name}.{key}", round(value, 4))
        run.log("attack.eval", method=name, antialias=METHODS[name][1], images=n_attack,
                **{k: round(v, 4) for k, v in result.items()})
        if run.device == "cuda" and name == VULNERABLE:
            run.log("device.note", detail="numpy/scikit-learn module: runs on the CPU")
    nonfilter = [n for n, (_, f) in METHODS.items() if not f]
    filtered = [n for n, (_, f) in METHODS.items() if f]
    run.metric("attack.non_antialiased_min_stealthy_success", round(min(summary[n]["stealthy_success_rate"] for n in nonfilter), 4))
    run.metric("attack.antialiased_max_stealthy_success", round(max(summary[n]["stealthy_success_rate"] for n in filtered), 4))
    run.metric("attack.non_antialiased_min_budget_success", round(min(summary[n]["budget_success_rate"] for n in nonfilter), 4))
    run.metric("attack.antialiased_max_budget_success", round(max(summary[n]["budget_success_rate"] for n in filtered), 4))
    run.metric("attack.benign_accuracy_min", round(min(r["benign_accuracy"] for r in summary.values()), 4))

    # Control 1: serve through an area resize. The images crafted for the nearest-neighbour pipeline
    # arrive at a pipeline that averages each 8x8 block.
    adv = crafted[VULNERABLE]
    for served in (ROBUST, "pillow_bilinear"):
        pred = models[served].predict(preprocess(adv, ops[served], "unit"))
        run.metric(f"control.{served}.target_rate", round(float(np.mean(pred == tgt_y)), 4))
        run.metric(f"control.{served}.source_rate", round(float(np.mean(pred == src_y)), 4))
        run.log("control.robust_resize", crafted_for=VULNERABLE, served_with=served,
                target_rate=round(float(np.mean(pred == tgt_y)), 4), source_rate=round(float(np.mean(pred == src_y)), 4))

    # Control 2: a scaling check in front of the vulnerable pipeline, calibrated on benign images.
    for pipe in (VULNERABLE, "torch_bilinear"):
        check = ScalingCheck(ops[pipe], ops[ROBUST], X_cal)
        atk_flags = check.flags(crafted[pipe])
        budget_flags = check.flags(within_budget(src, crafted[pipe], BUDGET_DB))
        benign_flags = check.flags(X_test[n_attack:] if len(X_test) > n_attack else X_test)
        run.metric(f"detector.{pipe}.threshold", round(check.threshold, 4))
        run.metric(f"detector.{pipe}.detection_rate", round(float(np.mean(atk_flags)), 4))
        run.metric(f"detector.{pipe}.budget_detection_rate", round(float(np.mean(budget_flags)), 4))
        run.metric(f"detector.{pipe}.false_positive_rate", round(float(np.mean(benign_flags)), 4))
        run.metric(f"detector.{pipe}.benign_images", int(benign_flags.size))
        gaps = check.gap(crafted[pipe][:3])
        for i, g in enumerate(gaps):
            run.log("serve.scaling_check", pipeline=pipe, robust=ROBUST, image=int(idx_test[i]), gap=round(float(g), 4),
                    threshold=round(check.threshold, 4), flagged=bool(g > check.threshold), action="quarantine" if g > check.threshold else "serve")
        run.log("detector.summary", pipeline=pipe, detection_rate=round(float(np.mean(atk_flags)), 4),
                budget_detection_rate=round(float(np.mean(budget_flags)), 4),
                false_positive_rate=round(float(np.mean(benign_flags)), 4), benign=int(benign_flags.size))

    # Training/serving skew: the model was trained by a script that resized with Pillow bilinear and
    # scaled pixels to [0, 1]; the serving code was written separately.
    trained = fit(preprocess(X_train, ops[TRAIN_PIPELINE], "unit"), y_train)
    train_fn = lambda imgs: preprocess(imgs, ops[TRAIN_PIPELINE], "unit")
    serving = {
        "shared": (TRAIN_PIPELINE, "unit"),
        "resize_torch_bilinear": ("torch_bilinear", "unit"),
        "resize_torch_nearest": ("torch_nearest", "unit"),
        "normalise_standard": (TRAIN_PIPELINE, "standard"),
        "normalise_bytes": (TRAIN_PIPELINE, "bytes"),
    }
    fixture = X_cal[:32]
    acc = {}
    caught = 0
    for cfg, (method, norm) in serving.items():
        serve_fn = lambda imgs, m=method, n=norm: preprocess(imgs, ops[m], n)
        acc[cfg] = float(np.mean(trained.predict(serve_fn(X_test)) == y_test))
        gap = parity(train_fn, serve_fn, fixture)
        passed = gap <= PARITY_TOLERANCE
        if cfg != "shared":
            caught += not passed
            run.metric(f"skew.{cfg}.accuracy_drop", round(acc["shared"] - acc[cfg], 4))
        run.metric(f"skew.{cfg}.accuracy", round(acc[cfg], 4))
        run.metric(f"skew.{cfg}.parity_gap", round(gap, 6))
        run.log("ci.parity_test", serving=cfg, resize=method, normalise=norm, max_feature_gap=round(gap, 6),
                tolerance=PARITY_TOLERANCE, result="pass" if passed else "FAIL", accuracy=round(acc[cfg], 4))
    skewed = [c for c in serving if c != "shared"]
    run.metric("skew.configs", len(skewed))
    run.metric("skew.parity_caught", caught)
    run.metric("skew.resize_max_drop", round(max(acc["shared"] - acc[c] for c in skewed if c.startswith("resize")), 4))
    run.metric("skew.normalise_min_drop", round(min(acc["shared"] - acc[c] for c in skewed if c.startswith("normalise")), 4))

    plot(run, summary, acc)
    show_example(run, src, crafted[VULNERABLE], ops, src_y, tgt_y)
    run.finish()


def to_full_size(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8x8 digits in [0, 1] -> 64x64 bicubic upscales with sensor noise: the harmless uploads."""
    import torch.nn.functional as F

    x = torch.from_numpy(images.astype(np.float64))[:, None]
    up = F.interpolate(x, size=(FULL, FULL), mode="bicubic", align_corners=False)[:, 0].numpy()
    return np.clip(up + rng.normal(0, NOISE, size=up.shape), 0.0, 1.0)


def plot(run: kit.Run, summary: dict, acc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(names))
    for off, key, label in ((-0.27, "success_rate", "model predicts target"), (0, "stealthy_success_rate", "... and viewer still sees source"),
                            (0.27, "budget_success_rate", f"stealthy, within {BUDGET_DB:.0f} dB budget")):
        axes[0].bar(x + off, [summary[n][key] for n in names], width=0.27, label=label)
    axes[0].set_xticks(x, [n.replace("_", "\n", 1) for n in names], fontsize=7)
    axes[0].set_ylabel("rate over attack images")
    axes[0].set_title(f"Image-scaling attack per resize method (seed {run.seed})")
    axes[0].legend(fontsize=7)
    cfgs = list(acc)
    axes[1].bar(range(len(cfgs)), [acc[c] for c in cfgs], color=["tab:green"] + ["tab:red"] * (len(cfgs) - 1))
    axes[1].set_xticks(range(len(cfgs)), [c.replace("_", "\n", 1) for c in cfgs], fontsize=7)
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title("Training/serving preprocessing skew")
    run.figure(fig, "scaling-attack-per-method")


def show_example(run: kit.Run, src: np.ndarray, adv: np.ndarray, ops: dict, src_y: np.ndarray, tgt_y: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(12, 2.8))
    panels = [(src[0], f"upload as sent (digit {src_y[0]})"), (adv[0], "attacked upload, 64x64"),
              (apply(ops[VULNERABLE], adv[:1])[0], f"{VULNERABLE} 8x8 (digit {tgt_y[0]})"),
              (apply(ops[ROBUST], adv[:1])[0], f"{ROBUST} 8x8"), (np.abs(adv[0] - src[0]), "|change|")]
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    run.figure(fig, "scaling-attack-example")


if __name__ == "__main__":
    main()
