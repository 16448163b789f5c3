"""Membership inference against an overfit digits classifier, and two defences measured against it.

The victim is a random forest of fully grown trees (the scikit-learn default, and a common
production choice for tabular data), trained on a small member set of scikit-learn's digits. Fully
grown trees memorise their bootstrap samples, so members receive higher-confidence votes than
unseen digits. The attacker holds other digits from the same distribution (never the members) and
sees only what the prediction API returns:

- loss threshold (Yeom et al. 2018): members have a higher log-odds on their true label;
- shadow models (Shokri et al. 2017): forests trained like the victim on the attacker's own data;
  an attack classifier learns what "member" outputs look like and is applied to the victim.

Defences, each measured against both attacks and against utility (test accuracy):
- regularisation: leaves of at least MIN_LEAF samples (growth stopped early) instead of full trees;
- output coarsening: confidences rounded to one decimal, or the top-1 label only.
Metrics: attack AUC (0.5 = guessing) and TPR at 1% FPR (what an attacker can claim with confidence),
the latter with a 95% bootstrap interval: every digit the victim and the attacker do not use is a
non-member (about 950), so 1% FPR rests on about 9 of them, and the interval says how much a point
estimate that thin can be trusted. Label-only output cannot change the top-1 answer, so its cost is
the confidence scores the caller no longer gets, not accuracy: no utility claim is made for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from fmbuild.evidence import kit

run = kit.start(__file__)

MEMBERS = 250  # a small training set, as in most teams' first production model
ATTACKER_POOL = 600  # the attacker's own digits: enough for shadows of MEMBERS in + MEMBERS out
BOOTSTRAP = run.pick(full=500, smoke=50)  # resamples for the TPR-at-1%-FPR interval
TREES = run.pick(full=100, smoke=20)
SHADOWS = run.pick(full=8, smoke=2)
MIN_LEAF = 4  # the regularised forest: stop splitting below 4 samples per leaf
ROUND_DECIMALS = 1
SMOOTH = 1e-3  # keeps log-odds finite when a forest votes unanimously


@dataclass
class Data:
    x: np.ndarray
    y: np.ndarray


def forest(train: Data, seed: int, min_leaf: int = 1) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=TREES, min_samples_leaf=min_leaf, random_state=seed,
                                  n_jobs=1).fit(train.x, train.y)


def api(model: RandomForestClassifier, x: np.ndarray, mode: str = "full") -> np.ndarray:
    """What the prediction endpoint returns: full probabilities, rounded ones, or a one-hot label."""
    p = model.predict_proba(x)
    if mode == "rounded":
        return np.round(p, ROUND_DECIMALS)
    if mode == "label":
        return np.eye(p.shape[1])[p.argmax(1)]
    return p


def log_odds(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Higher = more likely a member: log p_y - log(sum of the others), a monotone function of the
    cross-entropy loss on the true label (the loss-threshold attack's score)."""
    p_y = probs[np.arange(len(y)), y]
    return np.log(p_y + SMOOTH) - np.log(1.0 - p_y + SMOOTH)


def attack_features(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the shadow attack model sees: log-odds of the true label, sorted top-3, entropy."""
    top = -np.sort(-probs, 1)[:, :3]
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1, keepdims=True)
    return np.c_[log_odds(probs, y)[:, None], top, entropy]


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float = 0.01) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= fpr_target].max())


def tpr_interval(labels: np.ndarray, scores: np.ndarray, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of TPR at 1% FPR, members and non-members resampled separately."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    lab = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    draws = [tpr_at_fpr(lab, scores[np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]])
             for _ in range(BOOTSTRAP)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def train_shadows(pool: Data, min_leaf: int) -> list[tuple[RandomForestClassifier, np.ndarray, np.ndarray]]:
    """Shadow forests trained like the victim, each on half of a fresh draw from the attacker's
    own data, so the attacker knows exactly which samples were members of each."""
    shadows = []
    for k in range(SHADOWS):
        idx_in, idx_out = train_test_split(np.arange(len(pool.y)), train_size=MEMBERS, test_size=MEMBERS,
                                           stratify=pool.y, random_state=run.seed * 100 + k)
        shadows.append((forest(Data(pool.x[idx_in], pool.y[idx_in]), run.seed * 100 + k, min_leaf), idx_in, idx_out))
    run.log("shadow.trained", shadows=len(shadows), min_samples_leaf=min_leaf, members_each=MEMBERS)
    return shadows


class ShadowAttack:
    """An attack classifier learnt on the shadows' outputs, as the API would return them."""

    def __init__(self, pool: Data, shadows: list, mode: str) -> None:
        feats, labels = [], []
        for shadow, idx_in, idx_out in shadows:
            for idx, is_member in ((idx_in, 1), (idx_out, 0)):
                feats.append(attack_features(api(shadow, pool.x[idx], mode), pool.y[idx]))
                labels.append(np.full(len(idx), is_member))
        self.clf = GradientBoostingClassifier(random_state=run.seed).fit(np.vstack(feats), np.concatenate(labels))

    def scores(self, probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(attack_features(probs, y))[:, 1]


def evaluate(name: str, model: RandomForestClassifier, members: Data, outsiders: Data, mode: str,
             shadow: ShadowAttack) -> dict[str, float]:
    p_in, p_out = api(model, members.x, mode), api(model, outsiders.x, mode)
    labels = np.r_[np.ones(len(members.y)), np.zeros(len(outsiders.y))]
    loss = np.r_[log_odds(p_in, members.y), log_odds(p_out, outsiders.y)]
    shadow_scores = np.r_[shadow.scores(p_in, members.y), shadow.scores(p_out, outsiders.y)]
    result = {
        # utility is what the API's answer is worth: its top-1 label on unseen digits
        "test_accuracy": float((p_out.argmax(1) == outsiders.y).mean()),
        "train_accuracy": float((p_in.argmax(1) == members.y).mean()),
        "loss_attack.auc": float(roc_auc_score(labels, loss)),
        "loss_attack.tpr_at_1pct_fpr": tpr_at_fpr(labels, loss),
        "shadow_attack.auc": float(roc_auc_score(labels, shadow_scores)),
        "shadow_attack.tpr_at_1pct_fpr": tpr_at_fpr(labels, shadow_scores),
    }
    for attack, scores in (("loss_attack", loss), ("shadow_attack", shadow_scores)):
        low, high = tpr_interval(labels, scores, run.seed)
        result[f"{attack}.tpr_at_1pct_fpr_ci_low"], result[f"{attack}.tpr_at_1pct_fpr_ci_high"] = low, high
    result["best_auc"] = max(result["loss_attack.auc"], result["shadow_attack.auc"])
    for key, value in result.items():
        run.metric(f"{name}.{key}", value)
    run.log("attack.result", model=name, api_output=mode, **{k: round(v, 4) for k, v in result.items()})
    return result


def plot(rows: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = list(rows)
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [rows[n]["best_auc"] for n in names], 0.4, label="best attack AUC")
    ax.bar(xs + 0.2, [rows[n]["test_accuracy"] for n in names], 0.4, label="test accuracy (utility)")
    ax.axhline(0.5, color="grey", linestyle=":", label="AUC of a coin flip")
    ax.set_xticks(xs, [n.replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Membership inference vs utility, per defence", fontsize=9)
    run.figure(fig, "attack-auc-vs-utility")


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    idx_victim, idx_attacker = train_test_split(np.arange(len(y)), test_size=ATTACKER_POOL, stratify=y,
                                                random_state=run.seed)
    # members, and every other digit of the victim's side as a non-member (the evaluation's negatives)
    idx_mem, idx_out = train_test_split(idx_victim, train_size=MEMBERS, stratify=y[idx_victim], random_state=run.seed)
    members, outsiders, pool = (Data(x[i], y[i]) for i in (idx_mem, idx_out, idx_attacker))
    run.log("data.split", dataset="sklearn.load_digits", members=len(idx_mem), non_members=len(idx_out),
            attacker_pool=len(idx_attacker))

    victim = forest(members, run.seed)
    overfit_shadows = train_shadows(pool, min_leaf=1)
    rows = {"overfit": evaluate("overfit", victim, members, outsiders, "full", ShadowAttack(pool, overfit_shadows, "full"))}

    # regularisation: the attacker's shadows copy the new recipe too (Kerckhoffs: assume they know it)
    regularised = forest(members, run.seed, min_leaf=MIN_LEAF)
    rows["regularised"] = evaluate("regularised", regularised, members, outsiders, "full",
                                   ShadowAttack(pool, train_shadows(pool, min_leaf=MIN_LEAF), "full"))

    # output coarsening on the overfit model: the attacker's shadows see the same coarse output
    for mode, name in (("rounded", "rounded_output"), ("label", "label_only_output")):
        rows[name] = evaluate(name, victim, members, outsiders, mode, ShadowAttack(pool, overfit_shadows, mode))

    base = rows["overfit"]
    for name in ("regularised", "rounded_output", "label_only_output"):
        run.metric(f"{name}.auc_reduction", base["best_auc"] - rows[name]["best_auc"])
        if name != "label_only_output":  # its argmax is the overfit model's: a cost of 0 by construction
            run.metric(f"{name}.utility_cost", base["test_accuracy"] - rows[name]["test_accuracy"])
        run.log("defence.summary", defence=name, auc_reduction=round(base["best_auc"] - rows[name]["best_auc"], 4),
                utility_cost=round(base["test_accuracy"] - rows[name]["test_accuracy"], 4))
    run.metric("members", MEMBERS)
    run.metric("non_members", len(idx_out))
    run.metric("min_samples_leaf", MIN_LEAF)
    plot(rows)
    run.finish()


if __name__ == "__main__":
    main()
