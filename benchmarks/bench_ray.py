"""Benchmark of `fmbuild verify --executor ray`, printing figures.

1. Ray scheduling overhead per module, on a module that does nothing: the median wall time of one
   run through the Ray executor (ship, schedule, run on a worker, bring back) minus that of the
   same run by the local runner, on a two-node loopback cluster. Target: <= 0.5 s.
2. The bundled manual's modules verified on a two-node loopback cluster (one CPU per node)
   against the local runner with the same total CPUs (`--jobs 2`), every run fresh (`--no-cache`),
   one seed. Target: within 15 % of local. By default the modules whose records took at most
   `--max-record-s` seconds a seed (the whole manual takes about an hour a seed on two cores:
   `--all`).
3. On paper: what a 500-module manual of the same mix costs on 10 nodes (with 4 GPUs among them),
   from the records' durations, scheduled longest first.

    python benchmarks/bench_ray.py [--runs N] [--max-record-s S | --all] [--skip-manual]
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the loopback cluster the tests use
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_verify import make_project, runner_for  # noqa: E402
from ray_loopback import LoopbackCluster  # noqa: E402

from fmbuild.config import load_config  # noqa: E402
from fmbuild.evidence.isolation import choose_executor  # noqa: E402
from fmbuild.evidence.ray_dispatch import RayDispatch  # noqa: E402
from fmbuild.evidence.runner import Runner  # noqa: E402
from fmbuild.evidence.selection import select  # noqa: E402
from fmbuild.vault.load import load_vault  # noqa: E402


def bench_overhead(address: str, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fmbuild-bench-ray-") as folder:
        project = make_project(Path(folder) / "project", 1)
        config = load_config(project / "fmbuild.toml")
        vault = load_vault(config.vault_path, config, use_cache=False)
        [job] = select(["noop-000"], vault, config, cwd=project)
        local = runner_for(project, choose_executor("auto"))
        dispatch = RayDispatch(address)
        remote = Runner(dataclasses.replace(local.o, dispatch=dispatch))
        timings: dict[str, list[float]] = {"local": [], "ray": []}
        try:
            for label, runner in (("local", local), ("ray", remote)):
                runner.run(job)  # warm: imports, the worker process, the shipped module
                for _ in range(runs):
                    start = time.perf_counter()
                    result = runner.run(job)
                    timings[label].append(time.perf_counter() - start)
                    assert result.status == "passed", result.reason
        finally:
            dispatch.shutdown()
    base, wall = statistics.median(timings["local"]), statistics.median(timings["ray"])
    over = wall - base
    print(f"no-op module: local run median {base * 1000:.0f} ms, Ray run median {wall * 1000:.0f} ms "
          f"(max {max(timings['ray']) * 1000:.0f} ms) over {runs} runs")
    print(f"Ray scheduling overhead per module: {over * 1000:.0f} ms (target <= 500 ms) "
          f"{'OK' if over <= 0.5 else 'OVER TARGET'}")


def recorded_durations() -> dict[str, float]:
    found = {}
    for record in sorted((REPO / "evidence").glob("*/record/record.json")):
        data = json.loads(record.read_text(encoding="utf-8"))
        found[data["module"]] = float(data["duration_s"])
    return found


def verify_wall(args: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fmbuild", "verify", *args, "--format", "json", "--no-cache",
                           "--seed", "0"], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    try:
        return wall, json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"verify {' '.join(args)} gave no report:\n{done.stderr[-3000:]}") from None


def bench_manual(address: str, modules: list[str]) -> None:
    local_wall, local = verify_wall([*modules, "--jobs", "2"])
    ray_wall, remote = verify_wall([*modules, "--executor", "ray", "--ray-address", address])
    verdicts = {r["module"]: (r["status"], [c["ok"] for c in r["claims"]]) for r in local["results"]}
    same = all(verdicts[r["module"]] == (r["status"], [c["ok"] for c in r["claims"]]) for r in remote["results"])
    ratio = ray_wall / local_wall
    print(f"{len(modules)} bundled modules, seed 0, fresh runs: local --jobs 2 {local_wall:.1f} s, "
          f"two-node loopback Ray (1 CPU each) {ray_wall:.1f} s: {ratio:.2f}x local "
          f"(target <= 1.15x) {'OK' if ratio <= 1.15 else 'OVER TARGET'}; verdicts identical: {same}")


def on_paper(durations: dict[str, float], modules: int = 500, nodes: int = 10, cpus_per_node: int = 8,
             gpus: int = 4, seeds: int = 3) -> None:
    """Longest-first on nodes x CPUs slots: the makespan of `modules` modules of the manual's mix."""
    mix = sorted(durations.values(), reverse=True)
    runs = sorted((mix[i % len(mix)] for i in range(modules) for _ in range(seeds)), reverse=True)
    slots = [0.0] * (nodes * cpus_per_node)
    heapq.heapify(slots)
    for seconds in runs:
        heapq.heappush(slots, heapq.heappop(slots) + seconds)
    total = sum(runs)
    print(f"on paper: {modules} modules of this manual's mix (records' durations, {len(mix)} modules, all CPU), "
          f"{seeds} seeds = {total / 3600:.1f} CPU-hours; on {nodes} nodes x {cpus_per_node} CPUs "
          f"(one run per CPU) about {max(slots) / 60:.0f} min, against {total / 3600 / 2:.1f} h on one 2-CPU machine. "
          f"The {gpus} GPUs would take only `device: gpu` modules (one run per GPU); this manual has none yet, "
          f"so they would sit idle, and a GPU module's time would add to the makespan of its GPU alone.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--max-record-s", type=float, default=30.0,
                        help="manual part: only modules whose record took at most this many seconds a seed")
    parser.add_argument("--all", action="store_true", help="manual part: every bundled module (about an hour)")
    parser.add_argument("--skip-manual", action="store_true")
    args = parser.parse_args()
    durations = recorded_durations()
    with LoopbackCluster(nodes=2, cpus=1) as address:
        bench_overhead(address, args.runs)
        if not args.skip_manual:
            chosen = sorted(durations) if args.all else sorted(m for m, s in durations.items() if s <= args.max_record_s)
            bench_manual(address, chosen)
    on_paper(durations)


if __name__ == "__main__":
    main()
