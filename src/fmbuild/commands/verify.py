"""`fmbuild verify [NOTES|MODULES]`: run evidence modules isolated and cached, check the claims.

Each module runs once per seed (`--seeds 0,1,2`, default `[evidence].seeds`); a claim must hold
on every seed, and the output shows each claim's worst-case margin (`fmbuild.evidence.seeds`).
Exit 0 when nothing failed, errored or timed out (skips are fine); 1 otherwise; 2 on usage or
configuration errors. Progress and one line per finished module go to stderr; the summary table
(text) or the JSON document (`--format json`) to stdout; `--junit FILE` writes JUnit XML for CI.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fmbuild.commands.common import EXIT_FINDINGS, EXIT_OK, fail_usage

if TYPE_CHECKING:
    from rich.console import Console

    from fmbuild.config import Config
    from fmbuild.evidence.isolation import Executor
    from fmbuild.evidence.limits import Limits
    from fmbuild.evidence.ray_dispatch import RayDispatch
    from fmbuild.playbooks.run import Playbook, PlaybookResult


@click.command("verify")
@click.argument("targets", nargs=-1)
@click.option("--changed-since", "changed_since", metavar="REF",
              help="Only modules a change since REF touched (module files, declared inputs, a note's evidence block).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: CUDA when a GPU is present.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Modules run in parallel.")
@click.option("--gpu-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPU runs allowed to overlap on the one GPU.")
@click.option("--no-cache", is_flag=True, help="Run every selected module even when a cached result matches.")
@click.option("--record", is_flag=True, help="Write each passing module's record into evidence/<module>/record/.")
@click.option("--scale", type=click.Choice(["full", "smoke"]), default="full", show_default=True,
              help="smoke: a quick run that must produce every claimed metric; values are not judged.")
@click.option("--isolation", type=click.Choice(["auto", "bubblewrap", "subprocess"]), default="auto",
              show_default=True, help="auto: bubblewrap when it works here, else the weaker subprocess isolation.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Also write JUnit XML here.")
@click.option("--timeout", type=click.IntRange(min=1), help="Override every module's timeout (seconds).")
@click.option("--seeds", "seeds_text", metavar="0,1,2",
              help="Run each module once per seed; a claim must hold on every one (default: [evidence].seeds).")
@click.option("--seed", type=int, help="One seed only (same as --seeds N).")
@click.option("--shard", "shard_text", metavar="K/N",
              help="Run only part K of N of the selection, balanced by the records' durations (a CI matrix); "
                   "playbooks run in part 1.")
@click.option("--merge", "merge_files", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="REPORT", help="Merge shard reports (the JSON of --format json; JUnit .xml files too, with "
                                     "--junit OUT) into one verdict instead of running anything. Repeatable.")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: each module run is a Ray task on a cluster (needs fmbuild[ray]); --jobs then has no effect.")
@click.option("--ray-address", "ray_address", metavar="ADDRESS",
              help="With --executor ray: 'auto' or host:port of an existing cluster (default: start a local Ray instance).")
@click.option("--pass-env", "pass_env", multiple=True, metavar="NAME",
              help="Also let this host variable (it names a file, bound read-only) into the sandbox of a module "
                   "that declares it; [evidence] pass_env in fmbuild.toml lists the project's own. Repeatable.")
def command(
    targets: tuple[str, ...], changed_since: str | None, device: str, jobs: int, gpu_jobs: int, no_cache: bool,
    record: bool, scale: str, isolation: str, fmt: str, junit: Path | None, timeout: int | None,
    seeds_text: str | None, seed: int | None, pass_env: tuple[str, ...], shard_text: str | None = None,
    merge_files: tuple[Path, ...] = (), executor_kind: str = "local", ray_address: str | None = None,
) -> None:
    """Run evidence modules and check each note's claims against the measured metrics."""
    if ray_address is not None and executor_kind != "ray":
        fail_usage("--ray-address needs --executor ray")
    if merge_files:
        if targets or shard_text or record or changed_since:
            fail_usage("--merge combines finished shard reports; give no modules, --shard, --record or --changed-since")
        _merge(list(merge_files), fmt, junit)
        return
    from rich.console import Console

    from fmbuild.evidence import report
    from fmbuild.evidence.devices import DeviceError, detect_gpu, host_device
    from fmbuild.evidence.env_policy import pass_env_problem
    from fmbuild.evidence.isolation import IsolationError, choose_executor, fallback_reason
    from fmbuild.evidence.limits import MB, Limits
    from fmbuild.evidence.runner import RunnerOptions
    from fmbuild.evidence.seeds import SeedsRunner
    from fmbuild.evidence.selection import select
    from fmbuild.vault import load as loading

    if record and scale != "full":
        fail_usage("--record needs --scale full (smoke runs leave no record)")
    if seeds_text is not None and seed is not None:
        fail_usage("give --seeds or --seed, not both")
    wanted = parse_seeds(seeds_text) if seeds_text is not None else ([seed] if seed is not None else None)
    from fmbuild.evidence.shards import parse_shard, shard

    part: tuple[int, int] | None = None
    if shard_text is not None:
        try:
            part = parse_shard(shard_text)
        except ValueError as exc:
            fail_usage(str(exc))
            return
    for name in pass_env:
        problem = pass_env_problem(name)
        if problem:
            fail_usage(f"--pass-env {name}: {problem}")
    config, vault = loading.load_project()
    if config is None:  # load_project without --vault always has a config; kept for type checkers
        fail_usage("fmbuild verify needs fmbuild.toml")
        return
    from fmbuild.playbooks import verify as playbook_verify

    # Playbooks (notes with step marks) are picked out first; the rest name modules or notes.
    playbooks, module_targets = playbook_verify.split_targets(list(targets), vault, config)
    if changed_since is not None:
        playbooks = playbook_verify.changed(playbooks if targets else None, vault, config, changed_since)
    if targets and not module_targets and changed_since is None:
        selected = []
    else:
        selected = select(module_targets, vault, config, changed_since=changed_since)
    shard_note = ""
    if part is not None:
        k, n = part
        total = len(selected)
        selected, estimate = shard(selected, k, n)
        if k != 1:
            playbooks = []
        shard_note = f"shard {k}/{n}: {len(selected)} of {total} modules (about {estimate:.0f} s a seed by their records)"
    gpu = detect_gpu()
    dispatch = None
    # Ray prints its workers' deaths to stdout, which is ours (a JSON document, a table): send it to stderr.
    ray_prints = contextlib.redirect_stdout(sys.stderr) if executor_kind == "ray" else contextlib.nullcontext()
    ray_prints.__enter__()
    try:
        executor = choose_executor(isolation) if executor_kind == "local" else _worker_executor_guess(isolation)
        if executor_kind == "ray":
            dispatch = _connect_ray(ray_address, isolation, gpu_jobs, device)
            host = "ray"
        else:
            host = host_device(device, gpu)
    except (DeviceError, IsolationError) as exc:
        fail_usage(str(exc))
        return

    ev = config.evidence
    limits = Limits(0, ev.memory_mb, ev.max_processes, ev.max_file_mb, ev.max_log_mb * MB, ev.max_output_mb)
    seeds = wanted if wanted is not None else list(ev.seeds)
    if record and not set(ev.seeds) <= set(seeds):
        # A record is the standard's evidence: one missing a seed of it would not earn `verified`.
        fail_usage(f"--record writes the record of the standard, [evidence].seeds = {list(ev.seeds)}: "
                   f"--seeds {','.join(map(str, seeds))} lacks seed {', '.join(str(s) for s in ev.seeds if s not in seeds)}")
    if record:  # the standard's first seed gives the record's prose values, log and artifacts
        seeds = [*ev.seeds, *(s for s in seeds if s not in ev.seeds)]
    runner = SeedsRunner(RunnerOptions(
        project_root=config.project_root, state_dir=config.project_root / ".fmbuild" / "evidence",
        executor=executor, gpu=gpu, host_device=host, device_choice=device, limits=limits,
        default_timeout=ev.default_timeout, seed=seeds[0], scale=scale,
        use_cache=not no_cache, record=record, timeout_override=timeout,
        pass_env=tuple(dict.fromkeys((*ev.pass_env, *pass_env))), max_metrics_bytes=ev.max_metrics_mb * MB,
        dispatch=dispatch,
    ), seeds, vault_path=config.vault_path)
    worker_isolation = {"auto": "bubblewrap where a worker has it, else the subprocess fallback",
                        "bubblewrap": "bubblewrap, required on every worker",
                        "subprocess": "the subprocess fallback (forced)"}[isolation]
    isolation_text = executor.describe(limits) if dispatch is None else (
        f"on the workers of {dispatch.describe()}: {worker_isolation}; each record names its own")
    err = Console(stderr=True, highlight=False)
    # Piped or redirected, rich would wrap at 80 columns; a log reads better wider.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160) if fmt == "text" else None
    why = fallback_reason()
    if shard_note:
        err.print(shard_note, markup=False)
    if dispatch is not None:
        err.print(f"executor: {dispatch.describe()}", markup=False)
    elif executor.name != "bubblewrap":
        err.print(f"[yellow]warning:[/] weaker isolation: {why or 'subprocess chosen'}; lacks {', '.join(executor.lacks())}")
    if not selected and not playbooks:
        err.print("No evidence modules selected.")
    if dispatch is not None:  # every run goes to the cluster at once; its resources decide what runs when
        jobs = min(RAY_IN_FLIGHT, max(1, len(selected) * len(seeds)))
    try:
        with report.LiveReport(err, len(selected) * len(seeds), several_seeds=len(seeds) > 1) as live, \
                _cancel_on_interrupt(dispatch):
            results = runner.run_all(selected, parallel=jobs, gpu_parallel=gpu_jobs,
                                     on_start=live.started, on_finish=live.finished, on_module=live.module_finished)
    finally:
        if dispatch is not None:
            dispatch.shutdown()
        ray_prints.__exit__(None, None, None)
    for r in results:  # a module's own declaration never decides what enters its sandbox: say what did not
        if r.not_passed:
            err.print(f"note: {r.module} declares {', '.join(r.not_passed)}; not passed (only what fmbuild.toml "
                      "[evidence] pass_env or --pass-env NAME allows enters a sandbox, never a credential)", markup=False)
    playbook_results = _run_playbooks(playbooks, config, executor, limits, seeds[0], no_cache, record, err)
    if out is not None:
        if results or not playbook_results:
            report.print_text(out, results, isolation_text, seeds)
        playbook_verify.print_text(out, playbook_results)
    else:
        document = json.loads(report.to_json(results, isolation_text, host, seeds))
        document["playbooks"] = playbook_verify.as_json(playbook_results)
        document["ok"] = bool(document.get("ok")) and all(p.ok for p in playbook_results)
        click.echo(json.dumps(document, indent=2))
    if junit is not None:
        try:
            report.write_junit(junit, results)
        except OSError as exc:
            fail_usage(f"--junit {junit}: {exc}")
    ok = all(r.ok for r in results) and all(p.ok for p in playbook_results)
    sys.exit(EXIT_OK if ok else EXIT_FINDINGS)


RAY_IN_FLIGHT = 256  # runs submitted to a cluster at once (each waits in its own thread)


def _worker_executor_guess(isolation: str) -> Executor:
    """The isolation a worker on this machine would use: the cache key's first guess for a
    Ray run (the runner re-keys a run by what its worker really used)."""
    from fmbuild.evidence.isolation import IsolationError, SubprocessExecutor, choose_executor

    try:
        return choose_executor(isolation)
    except IsolationError:  # this machine lacks bubblewrap; the workers may have it
        return SubprocessExecutor()


def _connect_ray(address: str | None, isolation: str, gpu_jobs: int, device: str) -> RayDispatch:
    from fmbuild.evidence.ray_dispatch import RayDispatch

    dispatch = RayDispatch(address, isolation=isolation, gpu_jobs=gpu_jobs)
    if device == "cuda" and dispatch.gpus() <= 0:
        described = dispatch.describe()
        dispatch.shutdown()
        fail_usage(f"--device cuda, but the Ray cluster has no GPU ({described})")
    return dispatch


@contextlib.contextmanager
def _cancel_on_interrupt(dispatch: RayDispatch | None) -> Iterator[None]:
    """Ctrl-C while runs are on a cluster: cancel them all, then stop as any interrupted verify."""
    if dispatch is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: object) -> None:
        dispatch.cancel_all()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    except KeyboardInterrupt:
        click.echo("interrupted: the runs on the cluster were cancelled; nothing of them was kept", err=True)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _merge(files: list[Path], fmt: str, junit: Path | None) -> None:
    from fmbuild.evidence.merge import merge_junit, merge_reports, summary_lines

    reports = [f for f in files if f.suffix.lower() != ".xml"]
    xml_files = [f for f in files if f.suffix.lower() == ".xml"]
    if not reports:
        fail_usage("--merge needs the shards' JSON reports (fmbuild verify --format json); JUnit files only add to them")
    if xml_files and junit is None:
        fail_usage("--merge got JUnit files: name the merged file with --junit OUT")
    if junit is not None and not xml_files:
        fail_usage("--merge with --junit OUT merges the shards' JUnit files: give them with --merge FILE.xml")
    doc = merge_reports(reports)
    if junit is not None and xml_files:
        merge_junit(xml_files, junit)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        for line in summary_lines(doc):
            click.echo(line)
    sys.exit(EXIT_OK if doc["ok"] else EXIT_FINDINGS)


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` → [0, 1, 2]; anything else is a usage error naming what is wrong."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            fail_usage(f"--seeds {text!r}: {part!r} is not a seed (expected non-negative integers, e.g. --seeds 0,1,2)")
        if int(part) in seeds:
            fail_usage(f"--seeds {text!r}: seed {int(part)} is listed twice")
        seeds.append(int(part))
    return seeds


def _run_playbooks(
    playbooks: list[Playbook], config: Config, executor: Executor, limits: Limits, seed: int | None,
    no_cache: bool, record: bool, err: Console,
) -> list[PlaybookResult]:
    """Each selected playbook's steps, after the modules (their steps read the modules' records)."""
    from fmbuild.playbooks.run import PlaybookOptions, PlaybookRunner

    if not playbooks:
        return []
    runner = PlaybookRunner(PlaybookOptions(
        project_root=config.project_root, evidence_root=config.evidence_root,
        state_dir=config.project_root / ".fmbuild" / "evidence", executor=executor, limits=limits,
        seed=config.evidence.seed if seed is None else seed, use_cache=not no_cache, record=record,
    ))
    err.print(f"Running {len(playbooks)} playbook(s)...")
    return runner.run_all(playbooks, on_finish=lambda r: err.print(
        f"  {r.status:8} {r.playbook}{' (cached)' if r.cached else ''}", markup=False, highlight=False))
