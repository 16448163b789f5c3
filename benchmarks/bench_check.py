"""Benchmark `fmbuild check` on a synthetic vault: cold, warm, and with one note changed.

    python benchmarks/bench_check.py                 # 10,000 notes, 3 runs of each
    python benchmarks/bench_check.py --notes 2000 --repeat 1 --breakdown
    python benchmarks/bench_check.py --lifecycle     # deprecated notes, tables, evidence blocks

Each figure is the wall time of a real `fmbuild check` process (interpreter start included) and
the peak resident memory of its whole process tree (the parse workers included), sampled from
/proc. Targets (a 2-core machine, 10,000 notes): cold <= 5 s, warm <= 1 s, one note changed
<= 1 s, peak memory <= 1 GiB. `--breakdown` also times each stage in-process (CPU seconds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_vault import generate_vault  # noqa: E402

TARGETS = {"cold": 5.0, "warm": 1.0, "one note changed": 1.0}
MEMORY_TARGET_MB = 1024.0


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


FOUNDATION_ONLY = (
    "import sys, fmbuild.check as c; c.RULE_MODULES = ('links', 'schema', 'security', 'frameworks'); "
    "from fmbuild.cli import main; sys.argv[0] = 'fmbuild'; main()"
)


# An installed fmbuild runs from compiled bytecode; an environment that forbids writing it
# (PYTHONDONTWRITEBYTECODE) would make every timed run compile fmbuild's modules again.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _compile_fmbuild() -> None:
    import compileall

    import fmbuild

    compileall.compile_dir(str(Path(fmbuild.__file__).parent), quiet=1)


def run_check(project: Path, out: Path, foundation_only: bool = False) -> tuple[float, float, int, float]:
    """(wall seconds, peak tree RSS in MB, exit code, CPU seconds of the whole process tree)
    of one `fmbuild check`. CPU time shows the work done even on a machine shared with others,
    where wall time also counts the waiting."""
    peak = 0
    with out.open("wb") as sink:
        start = time.perf_counter()
        command = [sys.executable, "-c", FOUNDATION_ONLY] if foundation_only else [sys.executable, "-m", "fmbuild"]
        proc = subprocess.Popen(
            [*command, "check"], cwd=project, stdout=sink, stderr=subprocess.DEVNULL, env=_ENV
        )
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_kb(proc.pid))
                done.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)  # usage includes the reaped parse workers
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    return wall, peak / 1024, proc.returncode, usage.ru_utime + usage.ru_stime


def touch_one_note(vault: Path, round_: int) -> None:
    note = sorted((vault / "techniques").glob("*.md"))[round_ % 50]
    with note.open("a", encoding="utf-8") as fh:
        fh.write(f"\nEdited in round {round_}: see [[patterns]] and [[{note.stem}#Overview]].\n")


def breakdown(project: Path) -> None:
    """Where the time goes, in-process (CPU seconds; warm cache)."""
    t0 = time.process_time()
    from fmbuild.check import load_rules
    from fmbuild.check.registry import RULES, CheckContext
    from fmbuild.vault.load import load_project
    from fmbuild.vault.resolve import Resolver

    t1 = time.process_time()
    config, vault = load_project(start=project)
    t2 = time.process_time()
    load_rules()
    ctx = CheckContext(vault, config, Resolver(vault))
    print(f"  imports {t1 - t0:.3f}s, load (warm) {t2 - t1:.3f}s")
    for rule in RULES:
        if rule.needs_config and config is None:
            continue
        a = time.process_time()
        n = sum(1 for _ in rule.fn(ctx))
        print(f"  rule {rule.name:22} {time.process_time() - a:.3f}s  {n} findings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median shown)")
    parser.add_argument("--dir", type=Path, default=HERE / "out" / "check", help="where the vault is written")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage in-process")
    parser.add_argument(
        "--lifecycle", action="store_true",
        help="a vault that has lived: deprecated notes, playbook tables, evidence blocks (gen_vault --lifecycle)",
    )
    parser.add_argument(
        "--foundation-only", action="store_true",
        help="run check with the structural and schema rules only (no evidence or graph rules)",
    )
    args = parser.parse_args(argv)

    t = time.perf_counter()
    if args.foundation_only:
        print("rules: links, schema, security, frameworks only (evidence and graph rules left out)")
    vault = generate_vault(args.dir, args.notes, args.seed, args.lifecycle)
    if args.lifecycle:
        print("vault shape: lifecycle (deprecated notes, playbook tables, evidence blocks)")
    size_mb = sum(p.stat().st_size for p in vault.rglob("*.md")) / 1e6
    print(f"vault: {args.notes} notes, {size_mb:.1f} MB of markdown, generated in {time.perf_counter() - t:.1f}s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}, Python {sys.version.split()[0]}")

    _compile_fmbuild()
    results: dict[str, list[tuple[float, float, int, float]]] = {k: [] for k in TARGETS}
    out = args.dir / "check-output.txt"
    for round_ in range(args.repeat):
        shutil.rmtree(args.dir / ".fmbuild", ignore_errors=True)
        only = args.foundation_only
        results["cold"].append(run_check(args.dir, out, only))
        results["warm"].append(run_check(args.dir, out, only))
        touch_one_note(vault, round_)
        results["one note changed"].append(run_check(args.dir, out, only))

    findings = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if "[" in line)
    print(f"findings reported: {findings} (exit code {results['warm'][-1][2]})")
    ok = True
    for name, runs in results.items():
        walls = [r[0] for r in runs]
        cpu = statistics.median(r[3] for r in runs)
        peak = max(r[1] for r in runs)
        median = statistics.median(walls)
        passed = median <= TARGETS[name] and peak <= MEMORY_TARGET_MB
        ok &= passed
        print(
            f"{name:17} median {median:6.2f}s  (min {min(walls):.2f}s, max {max(walls):.2f}s, n={len(walls)})"
            f"  CPU {cpu:6.2f}s  peak RSS {peak:6.1f} MB   target <= {TARGETS[name]:.0f}s, <= {MEMORY_TARGET_MB:.0f} MB: "
            f"{'met' if passed else 'NOT met'}"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    if args.breakdown:
        print("breakdown:")
        breakdown(args.dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
