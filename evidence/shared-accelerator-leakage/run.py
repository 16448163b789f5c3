"""Shared-accelerator / shared-serving-process leakage between tenants, and the controls.

Part 1, residual memory: tenant A's inference request runs in a serving process; its input,
hidden activations and logits are freed when the request returns. Tenant B, in the same process,
allocates uninitialised buffers (`torch.empty`) of the public model's shapes and reads A's rows
back. Controls: zero on free, zero on allocate, a fresh worker process per tenant.
Part 2, shared result cache: B learns from latency whether A recently sent a given input;
per-tenant cache keys remove the signal.
With FMBUILD_DEVICE=cuda, part 1 runs on the CUDA caching allocator too (`cuda.*` metrics).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tenancy  # noqa: E402


def train_model(run, X, y):
    import torch

    torch.manual_seed(run.seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, tenancy.HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(tenancy.HIDDEN, tenancy.CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(run.pick(full=60, smoke=10)):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return model.eval()


def in_worker(ctx, fn, *args):
    """Run fn(*args) in a fresh worker forked from the clean forkserver; return (result, ms)."""
    t0 = time.perf_counter()
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        result = pool.apply(fn, args)
    return result, (time.perf_counter() - t0) * 1e3


def main() -> None:
    import torch
    from fmbuild.evidence import kit
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    run = kit.start(__file__)
    device = run.torch_device()
    torch.set_num_threads(1)
    digits = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(digits.data, digits.target, test_size=0.3,
                                          random_state=run.seed, stratify=digits.target)
    scaler = StandardScaler().fit(Xtr)
    Xtr = scaler.transform(Xtr).astype(np.float32)
    Xte = scaler.transform(Xte).astype(np.float32)
    model = train_model(run, Xtr, ytr.astype(np.int64))
    with torch.no_grad():
        acc = float((model(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean())
    run.metric("model.test_accuracy", acc)
    run.log("model.trained", dataset="sklearn load_digits", test_accuracy=round(acc, 4))
    weights = [p.detach().numpy().copy() for p in model.parameters()]

    # ---------------- part 1: residual memory in a shared serving process ----------------
    batch = run.pick(full=256, smoke=64)
    trials = run.pick(full=3, smoke=1)
    rng = np.random.default_rng(run.seed)
    requests = [json.dumps({"tenant": "A", "rows": Xte[rng.choice(len(Xte), batch, replace=False)].tolist()})
                for _ in range(trials)]
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "numpy", "tenancy"])
    in_worker(ctx, tenancy.tenant_a_only, weights, requests[0])  # start the forkserver
    results: dict[str, list] = {m: [] for m in ("none", "zero_on_free", "zero_on_alloc", "fresh_process")}
    costs: dict[str, list] = {m: [] for m in results}
    for i, req in enumerate(requests):
        base_ms = None
        for mode in ("none", "zero_on_free", "zero_on_alloc"):
            res, _ = in_worker(ctx, tenancy.shared_process_trial, weights, req, batch, mode)
            results[mode].append(res["recovered"])
            if mode == "none":
                base_ms = res
            elif mode == "zero_on_free":
                costs[mode].append(res["zero_ms"])
            else:
                costs[mode].append(res["scan_ms"] - base_ms["scan_ms"])
            run.log("tenancy.trial", trial=i, mode=mode, batch=batch,
                    recovered={k: round(v, 4) for k, v in res["recovered"].items()},
                    zero_ms=round(res["zero_ms"], 3), tenant_b_alloc_ms=round(res["scan_ms"], 3))
        a_res, a_worker_ms = in_worker(ctx, tenancy.tenant_a_only, weights, req)
        res, b_worker_ms = in_worker(ctx, tenancy.tenant_b_only, weights, req, batch)
        results["fresh_process"].append(res["recovered"])
        costs["fresh_process"].append(a_worker_ms - a_res["a_ms"])  # worker start and teardown
        run.log("tenancy.trial", trial=i, mode="fresh_process", batch=batch,
                recovered={k: round(v, 4) for k, v in res["recovered"].items()},
                worker_start_and_run_ms=round(a_worker_ms, 1))
    for mode, rows in results.items():
        for part in ("input", "pre_activation", "hidden", "logits", "all"):
            run.metric(f"residual.{mode}.recovered_{part}", float(np.mean([r[part] for r in rows])))
        run.metric(f"residual.{mode}.recovered_all_min", float(np.min([r["all"] for r in rows])))
        run.metric(f"residual.{mode}.recovered_all_max", float(np.max([r["all"] for r in rows])))
        if costs[mode]:
            run.metric(f"residual.{mode}.cost_ms", float(np.median(costs[mode])))
    run.metric("residual.batch_rows", batch)
    run.metric("residual.trials", trials)
    run.log("tenancy.summary", **{m: round(float(np.mean([r["all"] for r in rows])), 4) for m, rows in results.items()})

    # ---------------- part 1 on CUDA ----------------
    if run.device == "cuda":
        for mode in ("none", "zero_on_free", "empty_cache"):
            rows = [tenancy.cuda_trial(weights, req, batch, mode)["recovered"] for req in requests]
            for part in ("input", "pre_activation", "hidden", "logits", "all"):
                run.metric(f"cuda.residual.{mode}.recovered_{part}", float(np.mean([r[part] for r in rows])))
            run.log("cuda.trial", mode=mode, recovered_all=round(float(np.mean([r["all"] for r in rows])), 4))
    else:
        run.log("cuda.skipped", reason="FMBUILD_DEVICE is not cuda: the CUDA caching-allocator read "
                "(cuda.* metrics) needs a GPU and is not measured on this run")

    # ---------------- part 2: shared result cache timing ----------------
    n_candidates = run.pick(full=200, smoke=40)
    rows_per_request = 8
    cand_idx = [rng.choice(len(Xte), rows_per_request, replace=False) for _ in range(n_candidates)]
    candidates = [json.dumps({"rows": Xte[ix].tolist()}) for ix in cand_idx]
    sent = rng.permutation(np.r_[np.ones(n_candidates // 2, bool), np.zeros(n_candidates - n_candidates // 2, bool)])
    calib = [json.dumps({"rows": (rng.standard_normal((rows_per_request, 64))).astype(np.float32).tolist()})
             for _ in range(run.pick(full=40, smoke=10))]
    for per_tenant in (False, True):
        name = "per_tenant_keys" if per_tenant else "shared_keys"
        cache = tenancy.ResultCache(model, per_tenant=per_tenant)
        for _ in range(5):  # warm up the interpreter and torch kernels
            cache.serve("warmup", calib[0])
        for cand, was_sent in zip(candidates, sent):
            if was_sent:
                cache.serve("A", cand)
        miss = [tenancy.timed(cache, "B", c) for c in calib]
        hit = [tenancy.timed(cache, "B", c) for c in calib]
        threshold = tenancy.threshold_from_calibration(miss, hit)
        lat = np.array([tenancy.timed(cache, "B", c) for c in candidates])
        guess = lat < threshold
        accuracy = float((guess == sent).mean())
        run.metric(f"cache.{name}.attacker_accuracy", accuracy)
        run.metric(f"cache.{name}.true_positive_rate", float(guess[sent].mean()))
        run.metric(f"cache.{name}.false_positive_rate", float(guess[~sent].mean()))
        run.metric(f"cache.{name}.median_hit_ms", float(np.median(hit)))
        run.metric(f"cache.{name}.median_miss_ms", float(np.median(miss)))
        run.metric(f"cache.{name}.probe_median_ms_sent", float(np.median(lat[sent])))
        run.metric(f"cache.{name}.probe_median_ms_not_sent", float(np.median(lat[~sent])))
        run.log("cache.probe", keys=name, candidates=n_candidates, threshold_ms=round(threshold, 4),
                attacker_accuracy=round(accuracy, 4), cache_hits=cache.hits, cache_misses=cache.misses)
        if per_tenant:
            lat_pt, sent_pt = lat, sent
        else:
            lat_sh, thr_sh = lat, threshold
    run.metric("cache.candidates", n_candidates)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    modes = list(results)
    vals = [np.mean([r["all"] for r in results[m]]) for m in modes]
    ax.bar(["shared process\n(no control)", "zero on free", "zero on allocate", "fresh process\nper tenant"], vals,
           color=["#c0392b", "#27ae60", "#27ae60", "#27ae60"])
    ax.set_ylabel("fraction of A's rows read back by B")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Residual tensors after tenant A's request (batch {batch}, seed {run.seed})")
    run.figure(fig, "residual-recovery")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, lat, title in ((axes[0], lat_sh, "shared cache keys"), (axes[1], lat_pt, "per-tenant cache keys")):
        bins = np.linspace(0, np.percentile(np.r_[lat_sh, lat_pt], 98), 40)
        ax.hist(lat[sent_pt], bins=bins, alpha=0.7, label="A sent it")
        ax.hist(lat[~sent_pt], bins=bins, alpha=0.7, label="A did not")
        ax.set_title(title)
        ax.set_xlabel("B's probe latency (ms)")
    axes[0].axvline(thr_sh, color="k", ls="--", label="B's threshold")
    axes[0].legend()
    run.figure(fig, "cache-probe-latency")
    run.finish()


if __name__ == "__main__":
    main()
