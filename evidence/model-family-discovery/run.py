"""Discover the model family behind a prediction API, per API mode and query budget.

A provider serves one of several scikit-learn models (six families, several hyperparameter draws
each) trained on its half of the digits. The attacker holds the other half, trains shadow models
of every family, sends probes to the API and names the family whose shadows answer most like the
victim. Measured: identification accuracy per API mode (full probabilities, rounded, top-1 label),
per query budget, for natural digits against crafted probes, against the chance rate; and the cost
side of the controls (what label-only output takes from benign callers, and how many probes an
input-distribution monitor would see).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from fmbuild.evidence import kit
from fingerprint import FAMILIES, MODES, PROBE_KINDS, build, crafted_probes, identify, respond, sample_config, separation_scores

HEADLINE_BUDGET = 100   # budgets reported in the note's headline: one hundred probes
COVERAGE = 0.9          # a benign caller that abstains on its least-confident 10%
MONITOR_QUANTILE = 0.99  # the input monitor's threshold: 99th percentile of benign reconstruction error


def main() -> None:
    run = kit.start(__file__)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one thread per run: several runs share a small machine; also keeps it deterministic
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    digits = load_digits()
    X = digits.data / 16.0
    y = digits.target
    rng = np.random.default_rng(run.seed)
    order = rng.permutation(len(y))
    provider, attacker = order[: len(y) // 2], order[len(y) // 2:]
    n_cal = len(provider) // 5
    prov_train, prov_cal = provider[n_cal:], provider[:n_cal]
    n_pool = 300
    att_train, att_pool = attacker[n_pool:], attacker[:n_pool]
    run.log("data.split", dataset="sklearn digits", provider_train=len(prov_train), provider_calibration=len(prov_cal),
            attacker_shadow_train=len(att_train), attacker_probe_pool=len(att_pool))

    victims_per_family = run.pick(full=8, smoke=1)
    shadows_per_family = run.pick(full=5, smoke=2)
    per_kind = run.pick(full=600, smoke=60)
    budgets = run.pick(full=[10, 30, 100, 300], smoke=[10, 100])
    repeats = run.pick(full=5, smoke=2)
    run.metric("settings.families", len(FAMILIES))
    run.metric("settings.victims", victims_per_family * len(FAMILIES))
    run.metric("settings.shadows", shadows_per_family * len(FAMILIES))
    run.metric("settings.chance_rate", round(1 / len(FAMILIES), 4))

    cand, cand_kind = crafted_probes(X[att_train], y[att_train], per_kind, rng)
    probes = np.vstack([X[att_pool], cand])
    n_nat = len(att_pool)
    run.log("probes.built", natural=n_nat, crafted=len(cand),
            **{kind: int(np.sum(cand_kind == i)) for i, kind in enumerate(PROBE_KINDS)})

    def train_pool(who: str, idx: np.ndarray, count: int, seed_base: int) -> tuple[list, list]:
        cfg_rng = np.random.default_rng(seed_base)
        fams, probas = [], []
        for family in FAMILIES:
            for k in range(count):
                config = sample_config(family, cfg_rng)
                t0 = time.perf_counter()
                model = build(family, config, seed=seed_base + k).fit(X[idx], y[idx])
                proba = model.predict_proba(probes)
                fams.append(family)
                probas.append(proba)
                acc = float(np.mean(proba[:n_nat].argmax(axis=1) == y[att_pool])) if who == "victim" else None
                run.log(f"{who}.trained", family=family, config=config, seconds=round(time.perf_counter() - t0, 2),
                        **({"benign_accuracy": round(acc, 4)} if acc is not None else {}))
        return fams, probas

    v_fam, v_proba = train_pool("victim", prov_train, victims_per_family, 1000 * run.seed + 101)
    s_fam, s_proba = train_pool("shadow", att_train, shadows_per_family, 1000 * run.seed + 707)
    v_fam, s_fam = np.array(v_fam), np.array(s_fam)
    v_proba, s_proba = np.stack(v_proba), np.stack(s_proba)
    benign_acc = (v_proba[:, :n_nat].argmax(axis=2) == y[att_pool][None]).mean(axis=1)
    run.metric("victims.benign_accuracy_min", round(float(benign_acc.min()), 4))
    run.metric("victims.benign_accuracy_mean", round(float(benign_acc.mean()), 4))

    def accuracy(v_resp: np.ndarray, s_resp: np.ndarray, cols: np.ndarray) -> float:
        hits = [identify(v_resp[i][cols], s_resp[:, cols], s_fam) == v_fam[i] for i in range(len(v_fam))]
        return float(np.mean(hits))

    results: dict[str, dict[str, dict[int, float]]] = {}
    selected: dict[str, np.ndarray] = {}
    draw = np.random.default_rng(run.seed + 55)
    for mode in MODES:
        v_resp, s_resp = respond_all(v_proba, mode), respond_all(s_proba, mode)
        score = separation_scores(s_resp[:, n_nat:], s_fam)
        ranked = n_nat + np.argsort(-score, kind="stable")
        selected[mode] = ranked
        results[mode] = {"natural": {}, "crafted_random": {}, "crafted": {}}
        for b in budgets:
            nat = np.mean([accuracy(v_resp, s_resp, draw.choice(n_nat, size=b, replace=False)) for _ in range(repeats)])
            rnd = np.mean([accuracy(v_resp, s_resp, n_nat + draw.choice(len(cand), size=b, replace=False))
                           for _ in range(repeats)])
            sel = accuracy(v_resp, s_resp, ranked[:b])
            for name, value in (("natural", nat), ("crafted_random", rnd), ("crafted", sel)):
                results[mode][name][b] = float(value)
                run.metric(f"identify.{mode}.{name}.q_{b}", round(float(value), 4))
            run.log("identify.eval", mode=mode, probes=b, natural=round(float(nat), 4),
                    crafted_random=round(float(rnd), 4), crafted_selected=round(float(sel), 4),
                    chance=round(1 / len(FAMILIES), 4), victims=len(v_fam))
        top = ranked[:max(budgets)] - n_nat
        run.log("probes.selected", mode=mode, probes=len(top),
                **{kind: int(np.sum(cand_kind[top] == i)) for i, kind in enumerate(PROBE_KINDS)})

    hb = HEADLINE_BUDGET if HEADLINE_BUDGET in budgets else budgets[-1]
    best_label = max(results["label"]["crafted"][hb], results["label"]["crafted_random"][hb])
    run.metric("headline.budget", hb)
    run.metric("headline.label_crafted", round(results["label"]["crafted"][hb], 4))
    run.metric("headline.label_natural", round(results["label"]["natural"][hb], 4))
    run.metric("headline.probabilities_crafted", round(results["probabilities"]["crafted"][hb], 4))
    run.metric("headline.probabilities_natural", round(results["probabilities"]["natural"][hb], 4))
    run.metric("headline.rounded_crafted", round(results["rounded"]["crafted"][hb], 4))
    run.metric("headline.label_best", round(best_label, 4))
    run.metric("headline.label_only_reduction",
               round(results["probabilities"]["crafted"][hb] - results["label"]["crafted"][hb], 4))
    run.metric("headline.crafted_over_natural_label",
               round(results["label"]["crafted"][hb] - results["label"]["natural"][hb], 4))
    smallest = budgets[0]
    run.metric("headline.label_crafted_q_min", round(results["label"]["crafted"][smallest], 4))

    # Per-family result of the label-only attack at the headline budget (who gets mistaken for whom).
    v_resp, s_resp = respond_all(v_proba, "label"), respond_all(s_proba, "label")
    cols = selected["label"][:hb]
    guesses = [identify(v_resp[i][cols], s_resp[:, cols], s_fam) for i in range(len(v_fam))]
    for family in FAMILIES:
        mine = [g for g, f in zip(guesses, v_fam) if f == family]
        run.log("identify.family", mode="label", probes=hb, family=family, victims=len(mine),
                correct=sum(g == family for g in mine), guesses=sorted(set(mine)))

    # Ontology (AML.T0013): the classes a label-only API reveals within a small budget of natural probes.
    seen = [len(np.unique(v_proba[i, draw.choice(n_nat, size=30, replace=False)].argmax(axis=1))) for i in range(len(v_fam))]
    run.metric("ontology.label_classes_seen_q30_mean", round(float(np.mean(seen)), 4))
    run.metric("ontology.probability_vector_length", int(v_proba.shape[2]))

    # Cost of label-only output for benign callers: they can no longer abstain on low confidence.
    errs, sel_errs = [], []
    for i in range(len(v_fam)):
        p = v_proba[i, :n_nat]
        wrong = p.argmax(axis=1) != y[att_pool]
        keep = np.argsort(-p.max(axis=1), kind="stable")[: int(COVERAGE * n_nat)]
        errs.append(wrong.mean())
        sel_errs.append(wrong[keep].mean())
    run.metric("cost.label_only_error", round(float(np.mean(errs)), 4))
    run.metric("cost.probabilities_selective_error", round(float(np.mean(sel_errs)), 4))
    run.metric("cost.selective_error_reduction", round(float(np.mean(errs) - np.mean(sel_errs)), 4))
    run.log("cost.label_only", benign=n_nat, coverage=COVERAGE, error_all=round(float(np.mean(errs)), 4),
            error_confident=round(float(np.mean(sel_errs)), 4), victims=len(v_fam))

    # Monitor side: an input-distribution check (PCA reconstruction error, calibrated on the provider's
    # held-out digits) sees how many of the attacker's probes?
    pca = PCA(n_components=20, random_state=run.seed).fit(X[prov_train])
    def recon(Z: np.ndarray) -> np.ndarray:
        return np.linalg.norm(Z - pca.inverse_transform(pca.transform(Z)), axis=1)
    threshold = float(np.quantile(recon(X[prov_cal]), MONITOR_QUANTILE))
    err = recon(probes)
    flagged = err > threshold
    crafted_top = selected["label"][:hb]
    run.metric("monitor.natural_flag_rate", round(float(flagged[:n_nat].mean()), 4))
    run.metric("monitor.crafted_flag_rate", round(float(flagged[crafted_top].mean()), 4))
    run.metric("monitor.crafted_random_flag_rate", round(float(flagged[n_nat:].mean()), 4))
    for i, kind in enumerate(PROBE_KINDS):
        run.metric(f"monitor.kind.{kind}.flag_rate", round(float(flagged[n_nat:][cand_kind == i].mean()), 4))
    run.log("monitor.summary", threshold=round(threshold, 4), natural_flagged=int(flagged[:n_nat].sum()), natural=n_nat,
            crafted_flagged=int(flagged[crafted_top].sum()), crafted=len(crafted_top))
    for j in list(crafted_top[:2]) + [0]:
        run.log("serve.input_check", probe=int(j), kind="natural" if j < n_nat else PROBE_KINDS[cand_kind[j - n_nat]],
                reconstruction_error=round(float(err[j]), 4), threshold=round(threshold, 4),
                flagged=bool(flagged[j]), action="alert" if flagged[j] else "serve")
    # What the monitor leaves. An adaptive attacker screens its crafted probes with its own copy of such
    # a check (PCA on its own digits, its own 99th percentile) and sends only those that pass.
    own = PCA(n_components=20, random_state=run.seed).fit(X[att_train])
    def own_recon(Z: np.ndarray) -> np.ndarray:
        return np.linalg.norm(Z - own.inverse_transform(own.transform(Z)), axis=1)
    own_threshold = float(np.quantile(own_recon(X[att_train]), MONITOR_QUANTILE))
    passes = own_recon(probes) <= own_threshold
    quiet = selected["label"][passes[selected["label"]]][:hb]
    acc_quiet = accuracy(v_resp, s_resp, quiet)
    run.metric("monitor.adaptive.probes", int(len(quiet)))
    run.metric("monitor.adaptive.label_accuracy", round(acc_quiet, 4))
    run.metric("monitor.adaptive.flag_rate", round(float(flagged[quiet].mean()), 4))
    run.log("monitor.adaptive", mode="label", probes=len(quiet), identified=round(acc_quiet, 4),
            provider_flagged=int(flagged[quiet].sum()), unscreened_identified=round(results["label"]["crafted"][hb], 4))
    run.metric("monitor.label_natural_residual", round(results["label"]["natural"][budgets[-1]], 4))

    plot(run, results, budgets)
    if run.device == "cuda":
        run.log("device.note", detail="scikit-learn module: runs on the CPU")
    run.finish()


def respond_all(proba: np.ndarray, mode: str) -> np.ndarray:
    return np.stack([respond(p, mode) for p in proba])


def plot(run, results, budgets) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODES), figsize=(12, 3.6), sharey=True)
    styles = {"natural": ("natural digits", "o-"), "crafted_random": ("crafted, unselected", "s--"),
              "crafted": ("crafted, shadow-selected", "^-")}
    for ax, mode in zip(axes, MODES):
        for name, (label, style) in styles.items():
            ax.plot(budgets, [results[mode][name][b] for b in budgets], style, label=label)
        ax.axhline(1 / len(FAMILIES), color="grey", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_title(f"API returns: {mode}")
        ax.set_xlabel("probes sent")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("family identified (share of victims)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    run.figure(fig, "family-identification")


if __name__ == "__main__":
    main()
