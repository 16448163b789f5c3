"""Benchmark of `fmbuild verify`'s own costs, printing figures.

1. Runner overhead per module run, on a module that does nothing: the wall time of one runner
   run (isolation set-up, hashing, bookkeeping, cache store) minus the wall time of the same
   `python run.py` started directly. Target: <= 0.5 s. Measured for each usable executor.
2. A fully cached `fmbuild verify` over a whole vault, as a user runs it (a new process:
   interpreter start, vault load, hashing every module, cache look-ups, report). Target: <= 1 s.
   Measured on a synthetic project of MODULES modules and notes, and on this repository's own
   vault when every one of its modules is already cached (`--real`).

    python benchmarks/bench_verify.py [--runs N] [--modules M] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmbuild.config import load_config
from fmbuild.evidence.devices import GpuInfo
from fmbuild.evidence.isolation import BubblewrapExecutor, SubprocessExecutor, bwrap_usable
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.runner import Runner, RunnerOptions
from fmbuild.evidence.selection import select
from fmbuild.vault.load import load_vault

REPO = Path(__file__).resolve().parent.parent
NOOP = (
    "import os\nfrom pathlib import Path\n"
    "out = Path(os.environ.get('FMBUILD_OUT') or Path(__file__).parent / 'out')\n"
    "out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'metrics.json').write_text('{\"ok\": true, \"value\": 1}')\n"
)
TOML = """[vault]
path = "vault"

[evidence]
path = "evidence"
default_timeout = 60
seeds = {seeds}
"""


def make_project(root: Path, modules: int, seeds: int = 1) -> Path:
    (root / "vault" / "techniques").mkdir(parents=True)
    (root / "fmbuild.toml").write_text(TOML.format(seeds=list(range(seeds))))
    for i in range(modules):
        module = root / "evidence" / f"noop-{i:03d}"
        module.mkdir(parents=True)
        (module / "run.py").write_text(NOOP + f"# module {i}\n")
        (module / "README.md").write_text("A module that does nothing.\n")
        (root / "vault" / "techniques" / f"note-{i:03d}.md").write_text(
            f"---\ntitle: Note {i}\nid: bench-{i}\ntags: [type/technique]\nmaturity: draft\n"
            f"created: 2026-11-21\nupdated: 2026-11-21\nevidence:\n  module: evidence/noop-{i:03d}\n"
            f"  claims:\n    ok: \"== true\"\n    value: \">= 1\"\n---\n\n# Note {i}\n\nBody text.\n"
        )
    return root


def runner_for(project: Path, executor, use_cache: bool = False) -> Runner:
    config = load_config(project / "fmbuild.toml")
    ev = config.evidence
    return Runner(RunnerOptions(
        project_root=project, state_dir=project / ".fmbuild" / "evidence", executor=executor,
        gpu=GpuInfo(False), host_device="cpu", device_choice="auto",
        limits=Limits(0, ev.memory_mb, ev.max_processes, ev.max_file_mb, ev.max_log_mb * MB),
        default_timeout=ev.default_timeout, use_cache=use_cache,
    ))


def bench_overhead(project: Path, runs: int) -> None:
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    [job] = select(["noop-000"], vault, config, cwd=project)
    script = project / "evidence" / "noop-000" / "run.py"
    direct = []
    for _ in range(runs):
        out = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script)], env={**os.environ, "FMBUILD_OUT": str(out)}, check=True)
        direct.append(time.perf_counter() - start)
        shutil.rmtree(out)
    base = statistics.median(direct)
    print(f"plain `python run.py` of a no-op module: median {base * 1000:.0f} ms over {runs} runs")
    executors = [SubprocessExecutor()]
    if bwrap_usable()[0]:
        executors.insert(0, BubblewrapExecutor())
    else:
        print(f"bubblewrap not measured: {bwrap_usable()[1]}")
    for executor in executors:
        runner = runner_for(project, executor)
        runner.run(job)  # warm: the distribution index and imports
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            result = runner.run(job)
            walls.append(time.perf_counter() - start)
            assert result.status == "passed", result.reason
        wall = statistics.median(walls)
        over = wall - base
        verdict = "OK" if over <= 0.5 else "OVER TARGET"
        print(f"runner overhead per module ({executor.name}): median run {wall * 1000:.0f} ms, "
              f"overhead {over * 1000:.0f} ms (target <= 500 ms) {verdict}; "
              f"max {max(walls) * 1000:.0f} ms")


def time_cli(project: Path, runs: int) -> tuple[float, float, dict]:
    walls = []
    data: dict = {}
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fmbuild", "verify", "--format", "json"], cwd=project,
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        data = json.loads(done.stdout)
    return statistics.median(walls), max(walls), data


def bench_cached(project: Path, runs: int, label: str) -> None:
    median, worst, data = time_cli(project, runs)
    results = data["results"]
    cached = sum(1 for r in results if r["cached"])
    ran = [r["module"] for r in results if not r["cached"] and r["status"] != "skipped"]
    verdict = "OK" if median <= 1.0 else "OVER TARGET"
    print(f"fully cached `fmbuild verify` ({label}): {len(results)} modules, {cached} cached"
          f"{', ran ' + ', '.join(ran) if ran else ''}; median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
          f" over {runs} runs (target <= 1000 ms) {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=1, help="seeds in the synthetic project's standard (runs per module)")
    parser.add_argument("--real", action="store_true", help="also time this repository's vault (must be cached)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fmbuild-bench-") as folder:
        project = make_project(Path(folder) / "project", args.modules, args.seeds)
        bench_overhead(project, args.runs)
        warm = subprocess.run([sys.executable, "-m", "fmbuild", "verify"], cwd=project, capture_output=True, text=True)
        if warm.returncode != 0:
            raise SystemExit(f"warming the cache failed:\n{warm.stdout}\n{warm.stderr}")
        bench_cached(project, args.runs, f"synthetic vault of {args.modules} notes and modules, {args.seeds} seed(s)")
    if args.real:
        median, worst, data = time_cli(REPO, 1)  # fills the cache if needed (may take minutes)
        bench_cached(REPO, args.runs, "this repository")


if __name__ == "__main__":
    main()
