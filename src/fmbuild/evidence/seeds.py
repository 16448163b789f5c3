"""Verification across seeds: each module runs once per seed of the standard, every claim is
judged on every seed, and the per-seed results merge into one `SeedsResult` per module.

This layer sits over `Runner.run`: one `Runner` per seed (each run cached on its own, the seed
being part of the cache key), a thread pool over (module, seed) pairs, and the merge. Nothing
here knows how a run is isolated or cached.

Margins (`margins.margin`): the signed distance from the measured value to the threshold in the
claim's own units, positive when the claim holds with room to spare. The worst-case margin is the
smallest over the seeds. A claim that holds on some seeds and fails on
others is `flaky`; its module's status is `failed`.

With `--record`, a module whose claims hold on every seed gets one committed record covering
all the seeds (`records.Record.seeds`, `.seed_metrics`, per-claim per-seed verdicts); prose
values, the log and the artifacts come from the first seed of the standard. Its plots are
copied into the vault (`vault/records/<module>/`) so notes can embed them.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fmbuild import __version__
from fmbuild.evidence.claims import Claim, Verdict, _is_number, check_claim, check_presence
from fmbuild.evidence.margins import margin
from fmbuild.evidence.records import PLOT_SUFFIXES, VAULT_RECORDS, Record
from fmbuild.evidence.runner import (
    ClaimResult, Job, Result, Runner, RunnerOptions, claims_verdict, record_from_entry, utc_now,
)

VAULT_RECORDS_README = """# Recorded plots (generated)

`fmbuild verify --record` copies each evidence module's recorded plots here, into
`records/<module>/`, so a note can embed one: `![[records/<module>/<plot>.png]]`. Obsidian
and the site then show the image the committed record holds.

Do not edit these files: the next `fmbuild verify --record` replaces them. This folder holds
no notes.
"""


@dataclass
class SeedVerdict:
    seed: int
    measured: Any
    ok: bool
    margin: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"measured": self.measured, "ok": self.ok, "margin": _round(self.margin), "message": self.message}


@dataclass
class SeedClaim(ClaimResult):
    """A claim judged on every seed; `measured`/`ok`/`message` summarise them (first seed's value)."""

    per_seed: list[SeedVerdict] = field(default_factory=list)

    @property
    def failed_seeds(self) -> list[int]:
        return [v.seed for v in self.per_seed if not v.ok]

    @property
    def flaky(self) -> bool:
        return 0 < len(self.failed_seeds) < len(self.per_seed)

    @property
    def worst_margin(self) -> float | None:
        values = [v.margin for v in self.per_seed if v.margin is not None]
        return min(values) if values and len(values) == len(self.per_seed) else None

    @property
    def worst_seed(self) -> int | None:
        known = [(v.margin, v.seed) for v in self.per_seed if v.margin is not None]
        return min(known)[1] if known else None

    def measured_range(self) -> tuple[Any, Any] | None:
        """(min, max) of the measured values over the seeds, when they are all numbers."""
        values = [v.measured for v in self.per_seed]
        if values and all(_is_number(v) for v in values):
            return min(values), max(values)
        return None

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(
            worst_margin=_round(self.worst_margin), flaky=self.flaky, failed_seeds=self.failed_seeds,
            seeds={str(v.seed): v.as_dict() for v in self.per_seed},
        )
        return data


@dataclass
class SeedsResult(Result):
    """One module over every seed: the merged status and claims, and each seed's own `Result`."""

    seeds: list[int] = field(default_factory=list)
    runs: dict[int, Result] = field(default_factory=dict)

    @property
    def flaky(self) -> list[SeedClaim]:
        return [c for c in self.claims if isinstance(c, SeedClaim) and c.flaky]

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["seeds"] = self.seeds
        data["flaky"] = [c.metric for c in self.flaky]  # claims that hold on some seeds only
        data["runs"] = {
            str(seed): {"status": r.status, "reason": r.reason, "cached": r.cached,
                        "duration_s": round(r.duration_s, 3), "metrics": r.metrics, "date": r.date,
                        "node": r.node or "local"}
            for seed, r in self.runs.items()
        }
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


# --- judging and merging ---------------------------------------------------------------------


def judge_seeds(job: Job, runs: dict[int, Result], scale: str) -> list[SeedClaim]:
    """Every claim of every citing note, judged on each seed's metrics."""
    judge: Callable[[Claim, dict[str, Any]], Verdict] = check_presence if scale == "smoke" else check_claim
    measured_runs = {seed: r for seed, r in runs.items() if r.status in ("passed", "failed")}
    claims: list[SeedClaim] = []
    for note in job.notes:
        for claim in note.claims:
            per_seed = []
            for seed, run in measured_runs.items():
                v = judge(claim, run.metrics)
                per_seed.append(SeedVerdict(seed, v.measured, v.ok,
                                            margin(claim, run.metrics) if scale != "smoke" else None, v.message))
            claims.append(_summarise(note.note, claim.metric, claim.source, per_seed))
        for metric, why in note.invalid:  # `fmbuild check` reports these as claim-invalid
            per_seed = [SeedVerdict(seed, None, False, None, f"invalid claim: {why}") for seed in measured_runs]
            claims.append(_summarise(note.note, metric, "", per_seed))
    return claims


def _summarise(note: str, metric: str, expected: str, per_seed: list[SeedVerdict]) -> SeedClaim:
    first = per_seed[0] if per_seed else SeedVerdict(0, None, False, None, "no seed produced metrics")
    ok = bool(per_seed) and all(v.ok for v in per_seed)
    failed = [v for v in per_seed if not v.ok]
    if ok or len(per_seed) <= 1:
        message = first.message
    else:
        where = ", ".join(str(v.seed) for v in failed)
        prefix = "flaky: fails on seed" if len(failed) < len(per_seed) else "fails on seed"
        prefix += "s" if len(failed) > 1 else ""
        said = {v.message for v in failed}
        if len(said) == 1:
            message = f"{prefix} {where}: {said.pop()}"
        else:
            message = f"{prefix} {where}: " + "; ".join(f"seed {v.seed} {v.message}" for v in failed)
    return SeedClaim(note, metric, expected, first.measured, ok, message, per_seed=per_seed)


def merge(job: Job, seeds: list[int], runs: dict[int, Result], scale: str) -> SeedsResult:
    """One module's per-seed results as one: status, reason, claims, and the first seed's values."""
    runs = {s: runs[s] for s in seeds}  # in the standard's order, not the order they finished in
    first = runs[seeds[0]]
    fields = {f.name: getattr(first, f.name) for f in dataclasses.fields(Result)}
    fields.update(
        claims=[], duration_s=sum(r.duration_s for r in runs.values()),
        cached=all(r.cached for r in runs.values()), record="",
        node=", ".join(dict.fromkeys(r.node for r in runs.values() if r.node)),
    )
    result = SeedsResult(**fields, seeds=list(seeds), runs=dict(runs))
    label = len(seeds) > 1
    broken = [(s, runs[s]) for s in seeds if runs[s].status in ("error", "timeout")]
    if broken:
        seed, run = broken[0]
        result.status = run.status
        more = f" (and seed{'s' if len(broken) > 2 else ''} {', '.join(str(s) for s, _ in broken[1:])})" if len(broken) > 1 else ""
        result.reason = (f"seed {seed}: " if label else "") + run.reason + more
        result.log_tail, result.run_dir, result.returncode = run.log_tail, run.run_dir, run.returncode
        result.claims = judge_seeds(job, runs, scale)
        return result
    if all(runs[s].status == "skipped" for s in seeds):
        return result
    result.claims = judge_seeds(job, runs, scale)
    result.status, result.reason = claims_verdict(result.claims)
    return result


# --- running ---------------------------------------------------------------------------------


class SeedsRunner:
    """Runs jobs on every seed of `seeds`, `parallel` (module, seed) runs at a time."""

    def __init__(self, options: RunnerOptions, seeds: list[int], vault_path: Path | None = None) -> None:
        if not seeds:
            raise ValueError("at least one seed")
        self.options = options
        self.seeds = list(seeds)
        self.vault_path = vault_path
        self.runners: dict[int, Runner] = {}

    def run_all(
        self,
        jobs: list[Job],
        parallel: int = 1,
        gpu_parallel: int = 1,
        on_start: Callable[[Job, int], None] | None = None,
        on_finish: Callable[[Result], None] | None = None,
        on_module: Callable[[SeedsResult], None] | None = None,
    ) -> list[SeedsResult]:
        gpu_lock = threading.Semaphore(max(1, gpu_parallel))  # shared by every seed's runner
        # Each seed's runner runs and caches; the record (all seeds at once) is written here.
        self.runners = {
            seed: Runner(dataclasses.replace(self.options, seed=seed, record=False), gpu_lock=gpu_lock)
            for seed in self.seeds
        }
        done: dict[str, dict[int, Result]] = {job.name: {} for job in jobs}
        merged: dict[str, SeedsResult] = {}
        lock = threading.Lock()

        def one(pair: tuple[Job, int]) -> None:
            job, seed = pair
            if on_start:
                on_start(job, seed)
            try:
                result = self.runners[seed].run(job)
            except Exception as exc:  # a runner bug must not take the other runs down
                result = Result(job.name, "error", f"fmbuild failed while running it: {type(exc).__name__}: {exc}",
                                scale=self.options.scale, seed=seed, date=utc_now())
            if on_finish:
                on_finish(result)
            with lock:
                done[job.name][seed] = result
                complete = len(done[job.name]) == len(self.seeds)
            if complete:
                module = self.finish(job, done[job.name])
                with lock:
                    merged[job.name] = module
                if on_module:
                    on_module(module)

        pairs = [(job, seed) for job in jobs for seed in self.seeds]
        if parallel <= 1 or len(pairs) <= 1:
            for pair in pairs:
                one(pair)
        else:
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fmbuild-verify") as pool:
                list(pool.map(one, pairs))
        return [merged[job.name] for job in jobs]

    def finish(self, job: Job, runs: dict[int, Result]) -> SeedsResult:
        result = merge(job, self.seeds, runs, self.options.scale)
        if self.options.record:
            self._record(job, result)
        return result

    # --- the committed record ------------------------------------------------------------------

    def _record(self, job: Job, result: SeedsResult) -> None:
        if self.options.scale != "full":
            result.record = "not written: smoke runs leave no record"
            return
        if result.status != "passed":
            flaky = f" (flaky on seeds {sorted({s for c in result.flaky for s in c.failed_seeds})})" if result.flaky else ""
            result.record = f"not written: the run {result.status}{flaky}"
            return
        first = result.runs[self.seeds[0]]
        if first.entry is None:
            result.record = "not written: the first seed's run is not in the cache (run again with --no-cache)"
            return
        record = Record(
            module=result.module, status=result.status, inputs_hash=first.inputs_hash, metrics=first.metrics,
            claims=[c.as_dict() for c in result.claims], duration_s=round(first.duration_s, 3),
            device=first.device, isolation=first.isolation, environment=first.environment, seed=self.seeds[0],
            scale=first.scale, date=max(r.date for r in result.runs.values()), fmbuild=__version__,
            log_tail=first.log_tail, artifacts=[], seeds=list(self.seeds),
            seed_metrics={str(s): result.runs[s].metrics for s in self.seeds},
        )
        result.record = record_from_entry(job.spec.path, record, first.entry)
        if result.record != "written":
            return
        folder = job.spec.path / "record"
        if self.vault_path is not None:
            try:
                publish_plots(folder / "artifacts", record.artifacts, self.vault_path, result.module)
            except OSError as exc:
                result.record = f"written; plots not copied into the vault: {exc}"


def publish_plots(artifact_dir: Path, names: list[str], vault_path: Path, module: str) -> list[str]:
    """Copy a record's images into `vault/records/<module>/` (replacing the images a previous
    record put there; any other file in that folder is left alone). Returns the copied names."""
    plots = [n for n in names if Path(n).suffix.lower() in PLOT_SUFFIXES]
    root = vault_path / VAULT_RECORDS
    target = root / module
    if not plots and not target.is_dir():
        return []
    target.mkdir(parents=True, exist_ok=True)
    vault_real = vault_path.resolve()
    if not target.resolve().is_relative_to(vault_real):  # a link planted there must not lead outside
        raise OSError(f"{target} leads outside the vault; not writing plots there")
    readme = root / "README.md"
    if not readme.exists():
        readme.write_text(VAULT_RECORDS_README, encoding="utf-8")
    keep = set(plots)
    for old in sorted(target.rglob("*")):
        rel = old.relative_to(target).as_posix()
        if old.is_file() and old.suffix.lower() in PLOT_SUFFIXES and rel not in keep:
            old.unlink()
    for name in plots:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or not dest.parent.resolve().is_relative_to(vault_real):
            raise OSError(f"{dest} is a link; not replacing it")
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(artifact_dir / name, tmp)
        tmp.replace(dest)
    return plots
