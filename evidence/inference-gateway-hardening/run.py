"""Inference gateway hardening: the same attacks against an exposed model port, a pass-through proxy
and a hardened gateway, from a second process over loopback; plus the latency and throughput the
hardening costs.

The model is a small neural network trained here on scikit-learn's digits. Three uvicorn servers
run on 127.0.0.1 (ephemeral ports) in this process; `attacker.py` runs as a separate process.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from benign import population
from benign import drive as drive_benign
from servers import (
    ClientPolicy,
    GatewaySettings,
    Served,
    gateway_app,
    key_digest,
    model_app,
    passthrough_app,
)
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from fmbuild.evidence import kit

HERE = Path(__file__).resolve().parent


def attacker(run: kit.Run, mode: str, name: str, target: str, path: str, files: dict[str, Path], extra: list[str]) -> dict[str, Any]:
    out = run.artifact(f"attacker/{mode}-{name}.json")
    cmd = [sys.executable, str(HERE / "attacker.py"), mode, "--target", target, "--path", path,
           "--keys", str(files["keys"]), "--pool", str(files["pool"]), "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"attacker {mode} against {target} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    if "crawl" in result:  # keep the stolen rows in memory only: the saved file says how many, not which
        kept = {k: v for k, v in result["crawl"].items() if k not in ("x", "y")}
        out.write_text(json.dumps({**result, "crawl": kept}, indent=1))
    return result


def fidelity(x: list[list[float]], y: list[int], victim: Any, x_test: np.ndarray) -> float:
    """Agreement between a surrogate trained on the stolen labels and the victim, on held-out data."""
    victim_labels = victim.predict(x_test)
    if len(set(y)) < 2:
        constant = y[0] if y else 0
        return float(np.mean(victim_labels == constant))
    surrogate = LogisticRegression(max_iter=2000).fit(np.asarray(x), np.asarray(y))
    return float(np.mean(surrogate.predict(x_test) == victim_labels))


def main() -> None:
    run = kit.start(__file__)
    # Small models on a shared 2-core machine: BLAS threads only fight each other (10x slower fits).
    threadpool_limits(1)
    rng = random.Random(run.seed)
    digits = load_digits()
    x_train, x_rest, y_train, y_rest = train_test_split(digits.data, digits.target, train_size=900, random_state=run.seed, stratify=digits.target)
    x_pool, x_test = x_rest[:600], x_rest[600:]
    victim = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=run.seed).fit(x_train, y_train)
    run.metric("victim_accuracy", float(victim.score(x_test, y_rest[600:])))

    keys = {role: f"fm-{role}-{rng.getrandbits(96):024x}" for role in ("malicious", "burst", "crawler", "bench")}
    policies = {
        "malicious": ClientPolicy("partner-app", rate_per_s=20, burst=10, row_budget=500),
        "burst": ClientPolicy("batch-job", rate_per_s=20, burst=10, row_budget=10_000),
        "crawler": ClientPolicy("trial-user", rate_per_s=20, burst=10, row_budget=run.pick(full=40, smoke=24)),
        "bench": ClientPolicy("benchmark", rate_per_s=10_000, burst=10_000, row_budget=10_000_000),
    }
    # The standard tier every ordinary client gets; benign users below live under it.
    standard = {"rate_per_s": 20, "burst": 10, "row_budget": 1_000}
    users = population(rng, run.pick(full=10, smoke=3), median_requests=run.pick(full=80, smoke=25))
    policies.update({u.name: ClientPolicy(u.name, **standard) for u in users})
    keys_by_role = {**keys, **{u.name: u.key for u in users}}
    files = {"keys": run.artifact("attacker/keys.json"), "pool": run.artifact("attacker/pool.npy")}
    files["keys"].write_text(json.dumps(keys))
    np.save(files["pool"], x_pool[: run.pick(full=600, smoke=200)])
    access_log = run.artifact("gateway-access.jsonl")
    access_log.write_text("")  # a fresh log per run: the coverage metric counts its lines
    settings = GatewaySettings(upstream="", clients={key_digest(keys_by_role[r]): p for r, p in policies.items()}, access_log=access_log)
    extra = ["--burst", str(run.pick(full=200, smoke=60)), "--oversized-rows", str(run.pick(full=10_000, smoke=2_000)),
             "--slow-cap-s", str(run.pick(full=4.0, smoke=2.0)), "--bench-requests", str(run.pick(full=300, smoke=40))]

    with Served(model_app(victim), "model") as model:
        settings.upstream = model.url
        with Served(passthrough_app(model.url), "passthrough") as proxy, Served(gateway_app(settings), "gateway") as gateway:
            targets = {"exposed": (model.url, "/predict"), "passthrough": (proxy.url, "/v1/predict"), "hardened": (gateway.url, "/v1/predict")}
            run.log("servers.up", **{name: url for name, (url, _) in targets.items()})
            results: dict[str, dict[str, Any]] = {}
            for name, (url, path) in targets.items():
                got = attacker(run, "all", name, url, path, files, extra)
                results[name] = got
                report(run, name, got, victim, x_test)
                # What a token bucket may let through while the burst lasted: the bucket, plus the refill.
                # Load on the machine stretches the burst, so the share served moves; this bound moves with it.
                b, tier = got["burst"], policies["burst"]
                bound = min(b["sent"], tier.burst + tier.rate_per_s * b["seconds"])
                run.metric(f"{name}.burst_seconds", b["seconds"])
                run.metric(f"{name}.burst_accepted_over_bound", b["accepted"] - bound)
            statuses = asyncio.run(drive_benign(users, gateway.url, x_pool, run.seed))
            benign_traffic(run, statuses, standard)
            sent_to_gateway = expected_requests(results["hardened"]) + sum(len(v) for v in statuses.values())
    for scratch in files.values():  # the lab's API keys and query pool are inputs, not results
        scratch.unlink()
    logged = sum(1 for _ in access_log.open(encoding="utf-8"))
    run.metric("hardened.access_log_lines", logged)
    run.metric("hardened.access_log_coverage", logged / sent_to_gateway)
    run.log("gateway.access_log", lines=logged, requests_sent=sent_to_gateway, sample=json.loads(access_log.read_text().splitlines()[-1]))
    for name in ("passthrough", "hardened"):
        run.metric(f"{name}.added_latency_p50_ms", run.metrics[name]["p50_ms"] - run.metrics["exposed"]["p50_ms"])
        run.metric(f"{name}.throughput_ratio", run.metrics[name]["throughput_rps"] / run.metrics["exposed"]["throughput_rps"])
    figure(run)
    run.finish()


def benign_traffic(run: kit.Run, statuses: dict[str, list[str]], standard: dict[str, int]) -> None:
    """What the limits cost ordinary users: refusals by the rate limit and by the budget, and users who saw any."""
    every = [s for v in statuses.values() for s in v]
    rate = sum(s == "refused-rate" for s in every)
    budget = sum(s == "refused-budget" for s in every)
    run.metric("benign.clients", len(statuses))
    run.metric("benign.requests", len(every))
    run.metric("benign.refusal_rate", (rate + budget) / len(every))
    run.metric("benign.rate_limited_rate", rate / len(every))
    run.metric("benign.budget_refused_rate", budget / len(every))
    run.metric("benign.clients_refused_rate", sum(any(s.startswith("refused") for s in v) for v in statuses.values()) / len(statuses))
    run.metric("benign.clients_over_budget", sum("refused-budget" in v for v in statuses.values()))
    run.metric("benign.success_rate", sum(s == "200" for s in every) / len(every))
    for key, value in standard.items():
        run.metric(f"settings.standard.{key}", value)
    run.log("benign.traffic", clients=len(statuses), requests=len(every), rate_limited=rate, over_budget=budget,
            by_client={name: {"requests": len(v), "rate_limited": v.count("refused-rate"), "over_budget": v.count("refused-budget")}
                       for name, v in statuses.items()})


def expected_requests(r: dict[str, Any]) -> int:
    attack_sent = r["unauthenticated"]["sent"] + r["oversized"]["sent"] + r["malformed"]["sent"] + r["burst"]["sent"] + r["crawl"]["requests"] + 1
    return attack_sent + 5 + 2 * r["bench"]["requests"]


def report(run: kit.Run, name: str, r: dict[str, Any], victim: Any, x_test: np.ndarray) -> None:
    crawl = r["crawl"]
    values = {
        "unauthenticated_accepted_rate": r["unauthenticated"]["accepted"] / r["unauthenticated"]["sent"],
        "oversized_accepted": r["oversized"]["accepted"],
        "malformed_accepted": r["malformed"]["accepted"],
        "malformed_server_errors": r["malformed"]["server_errors"],
        "burst_accepted_rate": r["burst"]["accepted"] / r["burst"]["sent"],
        "crawl_rows_obtained": crawl["rows_obtained"],
        "extraction_fidelity": fidelity(crawl["x"], crawl["y"], victim, x_test),
        "slow_body_held_s": r["slow_body"]["held_seconds"],
        "p50_ms": r["bench"]["p50_ms"],
        "p95_ms": r["bench"]["p95_ms"],
        "throughput_rps": r["bench"]["throughput_rps"],
    }
    for key, value in values.items():
        run.metric(f"{name}.{key}", value)
    run.log("attack.result", target=name, **{k: round(v, 4) for k, v in values.items()},
            malformed_statuses=r["malformed"]["statuses"], oversized=r["oversized"]["responses"],
            slow_body_status=r["slow_body"]["status"], crawl_requests=crawl["requests"])


def figure(run: kit.Run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["exposed", "passthrough", "hardened"]
    rows = [("unauthenticated accepted", "unauthenticated_accepted_rate", 1), ("burst accepted", "burst_accepted_rate", 1),
            ("extraction fidelity", "extraction_fidelity", 1), ("malformed accepted (of 12)", "malformed_accepted", 12),
            ("oversized accepted (of 2)", "oversized_accepted", 2)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.26
    for i, name in enumerate(names):
        left.barh([j + i * width for j in range(len(rows))], [run.metrics[name][key] / scale for _, key, scale in rows], width, label=name)
    left.set_yticks([j + width for j in range(len(rows))], [label for label, _, _ in rows])
    left.set_xlim(0, 1.05)
    left.set_title("What got through (fraction)")
    left.legend(fontsize=8)
    right.bar(names, [run.metrics[n]["p50_ms"] for n in names], color="#2e86c1", label="p50")
    right.bar(names, [run.metrics[n]["p95_ms"] - run.metrics[n]["p50_ms"] for n in names], bottom=[run.metrics[n]["p50_ms"] for n in names], color="#aed6f1", label="p95")
    right.set_ylabel("latency per request (ms)")
    right.set_title("Cost of the gateway")
    right.legend(fontsize=8)
    run.figure(fig, "gateway-attacks-and-latency")


if __name__ == "__main__":
    main()
