"""Canary rollout with automatic rollback, measured on four candidate versions of a model.

The stable model is a logistic regression on half of the training data. Candidates, all trained on
the full training data: `good` (clean), `regressed` (30% of labels scrambled by a broken labelling
job), `poisoned` (80% of the 7s relabelled as 1: targeted poisoning) and `backdoored` (10% of
samples carry a pixel trigger and the label 0). Each candidate goes through the same canary
controller on the same request stream; the module measures which were stopped, how fast, and how
many wrong answers reached users compared with cutting all traffic over at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from canary import Guards, Outcome, Registry, rollout
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from fmbuild.evidence import kit

TRIGGER = [-11, -10, -9, -3, -2, -1]  # two bright bars in the bottom-right corner of the 8x8 image


def fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=3000).fit(x, y)


def with_trigger(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, TRIGGER] = 16.0
    return x


def candidates(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, LogisticRegression]:
    scrambled = y.copy()
    mask = rng.random(len(y)) < 0.30
    scrambled[mask] = rng.integers(0, 10, mask.sum())
    flipped = y.copy()
    flipped[(y == 7) & (rng.random(len(y)) < 0.8)] = 1
    x_bd, y_bd = x.copy(), y.copy()
    idx = rng.choice(len(y), int(0.10 * len(y)), replace=False)
    x_bd[idx] = with_trigger(x_bd[idx])
    y_bd[idx] = 0
    return {"good": fit(x, y), "regressed": fit(x, scrambled), "poisoned": fit(x, flipped), "backdoored": fit(x_bd, y_bd)}


def main() -> None:
    run = kit.start(__file__)
    # Small models on a shared 2-core machine: BLAS threads only fight each other (10x slower fits).
    threadpool_limits(1)
    rng = np.random.default_rng(run.seed)
    digits = load_digits()
    x_a, x_rest, y_a, y_rest = train_test_split(digits.data, digits.target, train_size=500, random_state=run.seed, stratify=digits.target)
    x_b, x_pool, y_b, y_pool = train_test_split(x_rest, y_rest, train_size=500, random_state=run.seed, stratify=y_rest)
    stable = fit(x_a, y_a)
    models = candidates(np.vstack([x_a, x_b]), np.concatenate([y_a, y_b]), rng)
    run.metric("stable.holdout_accuracy", stable.score(x_pool, y_pool))
    for name, model in models.items():
        run.metric(f"{name}.holdout_accuracy", model.score(x_pool, y_pool))

    stream = rng.choice(len(x_pool), run.pick(full=4000, smoke=1200), replace=True)
    x, y = x_pool[stream], y_pool[stream]
    guards = Guards(min_samples=run.pick(full=80, smoke=40))
    run.log("canary.config", stages=guards.stages, min_samples=guards.min_samples, tolerance=guards.tolerance,
            recall_drop=guards.recall_drop, max_disagreement=guards.max_disagreement, requests=len(stream))
    outcomes: dict[str, Outcome] = {}
    for name, model in models.items():
        registry = Registry(run.artifact(f"registry/{name}.json"))
        outcome = rollout(stable.predict, model.predict, x, y, guards, registry, name, run.log)
        outcomes[name] = outcome
        end = outcome.decided_at + 1
        without = int(np.sum(model.predict(x[:end]) != y[:end]))  # the same period with all traffic cut over
        stable_wrong = int(np.sum(stable.predict(x[:end]) != y[:end]))
        values: dict[str, Any] = {
            "promoted": outcome.decision == "promoted",
            "rolled_back": outcome.decision == "rolled-back",
            "decided_at_request": outcome.decided_at,
            "stage_percent_at_decision": outcome.stage_reached,
            "served_by_candidate": outcome.served_by_candidate,
            "wrong_answers_served": outcome.wrong_by_candidate,
            "wrong_answers_without_canary": without,
            "excess_wrong_without_canary": without - stable_wrong,
        }
        for key, value in values.items():
            run.metric(f"{name}.{key}", value)
        run.log("canary.outcome", candidate=name, decision=outcome.decision, reason=outcome.reason, **values)

    triggered = with_trigger(x_pool[y_pool != 0])
    run.metric("backdoored.trigger_success_rate", float(np.mean(models["backdoored"].predict(triggered) == 0)))
    run.metric("stable.trigger_success_rate", float(np.mean(stable.predict(triggered) == 0)))
    figure(run, outcomes)
    run.finish()


def figure(run: kit.Run, outcomes: dict[str, Outcome]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(outcomes), figsize=(14, 3.6), sharey=True)
    for ax, (name, o) in zip(axes, outcomes.items()):
        if o.trace:
            req, acc_s, acc_c, dis = zip(*o.trace)
            ax.plot(req, acc_s, label="stable accuracy", color="#2e86c1")
            ax.plot(req, acc_c, label="candidate accuracy", color="#c0392b")
            ax.plot(req, dis, label="disagreement", color="#7f8c8d", linestyle=":")
        ax.axvline(o.decided_at, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{name}: {o.decision}", fontsize=10)
        ax.set_xlabel("request")
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="lower left")
    run.figure(fig, "canary-decisions")


if __name__ == "__main__":
    main()
