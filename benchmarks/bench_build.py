"""Benchmark `fmbuild build` on a generated vault against MkDocs with Material alone.

    python benchmarks/bench_build.py [--notes 1000] [--seed 0] [--repeat 1] [--keep DIR]

1. Generates a vault of N notes (`benchmarks/gen_vault.py`).
2. Times the whole build as `fmbuild build` runs it: load the vault (parse cache warm, as in an
   author's loop), check, graph, conversion, MkDocs, Editions.
3. Times `mkdocs build` (Material) alone on the same, already converted pages (same
   mkdocs.yml, another site folder). Each side runs as a fresh process, imports included, and
   is measured in wall time and in CPU time (user + system of the child).

Prints both figures the issue sets targets for: the conversion as a share of MkDocs' own build
time (target <= 10%), and the whole build against MkDocs alone (target: no more than 10% slower).
The generated vault holds deliberate broken links, so check findings are reported, not fatal.
On a shared machine, run with --repeat 3: each figure is the best of the runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gen_vault import generate_vault
from fmbuild.site.build import BuildOptions, build_site
from fmbuild.vault.load import load_project

TARGET = 0.10


def child_build(project: Path, output: Path) -> None:
    """In the child process: the whole build as `fmbuild build` runs it; stage timings to stdout."""
    t0 = time.perf_counter()
    config, vault = load_project(start=project)
    load = time.perf_counter() - t0
    report = build_site(config, vault, BuildOptions(output=output, fail_on_check=False))
    timings = dict(report.timings)
    timings.update(load=load, warnings=len(report.mkdocs_warnings))
    print(json.dumps(timings))


def measured(command: list[str]) -> tuple[float, float, str]:
    """(wall, CPU of the child, its stdout) for one fresh process, imports included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def verdict(value: float) -> str:
    return "met" if value <= TARGET else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build here and keep the result")
    parser.add_argument("--child-build", nargs=2, type=Path, metavar=("PROJECT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_build:
        child_build(*args.child_build)
        return 0

    work = args.keep or Path(tempfile.mkdtemp(prefix="fmbuild-bench-"))
    try:
        project = work / "project"
        if project.exists():
            shutil.rmtree(project)
        generate_vault(project, args.notes, seed=args.seed)
        load_project(start=project)  # warm the parse cache, as an author's second build finds it
        print(f"vault: {args.notes} notes (seed {args.seed}) in {project}")
        staged_config = project / ".fmbuild" / "site-src" / "mkdocs.yml"

        runs, alone = [], []
        for i in range(args.repeat):  # interleaved, so both sides see the same machine load
            wall, cpu, out = measured([sys.executable, __file__, "--child-build", str(project), str(work / "site")])
            t = json.loads(out.strip().splitlines()[-1])
            runs.append((wall, cpu, t))
            print(f"  run {i + 1}: fmbuild build: wall {wall:.2f} s, CPU {cpu:.2f} s; stages (wall): load {t['load']:.2f}, "
                  f"check {t.get('check', 0):.2f}, graph {t['graph']:.2f}, convert {t['convert']:.2f} "
                  f"(CPU {t['convert_cpu']:.2f}), mkdocs {t['mkdocs']:.2f} (CPU {t['mkdocs_cpu']:.2f}), "
                  f"sanitize {t.get('sanitize', 0):.2f} (CPU {t.get('sanitize_cpu', 0):.2f}); "
                  f"MkDocs warnings: {t['warnings']}")
            a_wall, a_cpu, _ = measured([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(staged_config),
                                         "-d", str(work / "site-mkdocs-alone")])
            alone.append((a_wall, a_cpu))
            print(f"  run {i + 1}: mkdocs build (Material) alone on the converted pages: wall {a_wall:.2f} s, CPU {a_cpu:.2f} s")

        print()
        for label, index, stage in (("CPU time", 1, "convert_cpu"), ("wall time", 0, "convert")):
            convert = min(r[2][stage] for r in runs)
            whole = min(r[index] for r in runs)
            base = min(a[index] for a in alone)
            share, overhead = convert / base, whole / base - 1
            print(f"[{label}] conversion: {convert:.2f} s = {share:.1%} of MkDocs' own build ({base:.2f} s); "
                  f"target <= {TARGET:.0%}: {verdict(share)}")
            print(f"[{label}] whole build: {whole:.2f} s vs MkDocs alone {base:.2f} s: {overhead:+.1%}; "
                  f"target <= +{TARGET:.0%}: {verdict(overhead)}")
        print("(each side is a fresh process, imports included; on a shared machine CPU time is the steadier figure)")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
