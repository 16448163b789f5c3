"""Benchmark `fmbuild build` on a generated vault against MkDocs with Material alone.

    python benchmarks/bench_build.py [--notes 1000] [--seed 0] [--repeat 1] [--keep DIR]

1. Generates a vault of N notes (`benchmarks/gen_vault.py`).
2. Times the whole build as `fmbuild build` runs it: load the vault (parse cache warm, as in an
   author's loop), check, graph, conversion, MkDocs, Editions.
3. Times MkDocs with Material alone on the same, already converted pages (same mkdocs.yml,
   another site folder).

Prints both figures the issue sets targets for: the conversion as a share of MkDocs' own build
time (target <= 10%), and the whole build against MkDocs alone (target: no more than 10% slower).
The generated vault holds deliberate broken links, so check findings are reported, not fatal.
On a shared machine, run with --repeat 3: each figure is the best of the runs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gen_vault import generate_vault
from fmbuild.site.build import BuildOptions, build_site
from fmbuild.vault.load import load_project

TARGET = 0.10


def whole_build(project: Path, output: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    config, vault = load_project(start=project)
    load_s = time.perf_counter() - t0
    report = build_site(config, vault, BuildOptions(output=output, fail_on_check=False))
    timings = dict(report.timings)
    timings["load"] = load_s
    timings["whole"] = time.perf_counter() - t0
    if report.mkdocs_warnings:
        print(f"  MkDocs warnings: {len(report.mkdocs_warnings)} (first: {report.mkdocs_warnings[0]})")
    return timings


def mkdocs_alone(config_file: Path, site_dir: Path) -> float:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    logging.getLogger("mkdocs").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    build(load_config(config_file=str(config_file), site_dir=str(site_dir)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build here and keep the result")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="fmbuild-bench-"))
    try:
        project = work / "project"
        if project.exists():
            shutil.rmtree(project)
        generate_vault(project, args.notes, seed=args.seed)
        load_project(start=project)  # warm the parse cache, as an author's second build finds it
        print(f"vault: {args.notes} notes (seed {args.seed}) in {project}")

        runs, alone = [], []
        for i in range(args.repeat):
            t = whole_build(project, work / "site")
            runs.append(t)
            print(f"  run {i + 1}: whole {t['whole']:.2f} s = load {t['load']:.2f} + check {t.get('check', 0):.2f} "
                  f"+ graph {t['graph']:.2f} + convert {t['convert']:.2f} + mkdocs {t['mkdocs']:.2f} (+ rest)")
            a = mkdocs_alone(project / ".fmbuild" / "site-src" / "mkdocs.yml", work / "site-mkdocs-alone")
            alone.append(a)
            print(f"  run {i + 1}: MkDocs + Material alone on the converted pages {a:.2f} s")

        convert = min(t["convert"] for t in runs)
        whole = min(t["whole"] for t in runs)
        base = min(alone)
        share = convert / base
        overhead = whole / base - 1
        print()
        print(f"conversion: {convert:.2f} s = {share:.1%} of MkDocs' own build ({base:.2f} s); "
              f"target <= {TARGET:.0%}: {'met' if share <= TARGET else 'NOT met'}")
        print(f"whole build: {whole:.2f} s vs MkDocs alone {base:.2f} s: {overhead:+.1%}; "
              f"target <= +{TARGET:.0%}: {'met' if overhead <= TARGET else 'NOT met'}")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
