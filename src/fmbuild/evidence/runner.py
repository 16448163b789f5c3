"""The evidence runner: run each selected module once, isolated and cached, and judge its claims.

One `Job` is one module with the claims of every note that cites it. `Runner.run(job)` goes:
contract problems → device → required packages and files (→ `skipped` with the reason) → cache
lookup → isolated run → metrics → claims → cache store → committed record (`--record`).
`Runner.run_all(jobs, parallel=N)` runs jobs on a thread pool; runs on the GPU never overlap
unless `gpu_parallel` allows it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fmbuild import __version__
from fmbuild.evidence import safe_read
from fmbuild.evidence.cache import CacheEntry, RunCache
from fmbuild.evidence.capture import tail_lines
from fmbuild.evidence.claims import Claim, Verdict, check_claim, check_presence
from fmbuild.evidence.contract import ModuleSpec
from fmbuild.evidence.devices import GpuInfo, cluster_device, module_device
from fmbuild.evidence.fingerprint import cache_key, environment, file_identity, inputs_hash
from fmbuild.evidence.env_policy import pass_env_problem
from fmbuild.evidence.install_hints import missing_reason
from fmbuild.evidence.isolation import SANDBOX_OUT, Executor, Launch
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.metrics_file import METRICS_FILE, MetricsError, read_metrics
from fmbuild.evidence.records import Record, RecordError, sanitize_log, secret_values, write_record

STATUSES = ("passed", "failed", "error", "timeout", "skipped")
# Variables passed from the runner's environment when set (nothing secret: locale, threads, GPUs).
ENV_PASSTHROUGH = (
    "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
)
LOG_TAIL_LINES = 40
# A failed run's folder is kept for inspection (`.fmbuild/evidence/last/<module>`), its outputs
# only up to this size: a run that filled the disk must not keep filling it.
KEEP_FAILED_OUTPUT_BYTES = 64 * MB
_KEEP_FAILURE_LOCK = threading.Lock()  # orders the renames into last/<module> (see _keep_failure)


@dataclass(frozen=True, slots=True)
class NoteClaims:
    note: str  # vault-relative path of the citing note ('' when the module was named directly)
    claims: tuple[Claim, ...]
    device: str | None = None
    timeout: int | None = None
    invalid: tuple[tuple[str, str], ...] = ()  # (metric, why) of claims that did not parse


@dataclass
class Job:
    spec: ModuleSpec
    notes: list[NoteClaims] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def declared_device(self) -> str:
        """module.toml wins; else the strictest device any citing note asks for."""
        if self.spec.device:
            return self.spec.device
        asked = {n.device for n in self.notes if n.device}
        if "gpu" in asked:
            return "gpu"
        if "cpu" in asked:
            return "cpu"
        return "any"

    def timeout(self, default: int) -> int:
        if self.spec.timeout:
            return self.spec.timeout
        asked = [n.timeout for n in self.notes if n.timeout]
        return max(asked) if asked else default


@dataclass
class ClaimResult:
    note: str
    metric: str
    expected: str
    measured: Any
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"note": self.note, "metric": self.metric, "expected": self.expected,
                "measured": self.measured, "ok": self.ok, "message": self.message}


@dataclass
class Result:
    module: str
    status: str
    reason: str = ""  # one line: why it failed, errored, timed out or was skipped
    claims: list[ClaimResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    device: str = ""
    isolation: str = ""
    cached: bool = False
    log_tail: str = ""
    returncode: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    inputs_hash: str = ""
    key: str = ""
    date: str = ""
    scale: str = "full"
    seed: int = 0
    run_dir: Path | None = None
    node: str = ""  # where it ran, when not on this machine (a Ray node)
    artifacts: list[str] = field(default_factory=list)
    record: str = ""  # what happened to the committed record with --record
    not_passed: list[str] = field(default_factory=list)  # declared variables the project did not pass
    # The MAC-checked cache entry of a passed run: what a record may be written from (never serialised).
    entry: CacheEntry | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")

    def as_dict(self) -> dict[str, Any]:
        return {
            "module": self.module, "status": self.status, "reason": self.reason,
            "cached": self.cached, "duration_s": round(self.duration_s, 3), "device": self.device,
            "isolation": self.isolation, "scale": self.scale, "seed": self.seed,
            "claims": [c.as_dict() for c in self.claims], "metrics": self.metrics,
            "returncode": self.returncode, "log_tail": self.log_tail, "inputs_hash": self.inputs_hash,
            "environment": self.environment, "date": self.date, "artifacts": self.artifacts,
            "record": self.record, "env_not_passed": self.not_passed, "node": self.node or "local",
        }


@dataclass(frozen=True)
class RunnerOptions:
    project_root: Path
    state_dir: Path  # `.fmbuild/evidence`
    executor: Executor
    gpu: GpuInfo
    host_device: str  # 'cpu' | 'cuda'
    device_choice: str  # 'auto' | 'cpu' | 'cuda'
    limits: Limits  # timeout_s is replaced per module
    default_timeout: int
    seed: int = 0
    scale: str = "full"
    use_cache: bool = True
    record: bool = False
    cell_timeout: int | None = None
    timeout_override: int | None = None  # --timeout: one limit for every module
    pass_env: tuple[str, ...] = ()  # host variables the project or verifier lets in ([evidence] pass_env, --pass-env)
    max_metrics_bytes: int = 16 * MB  # largest metrics.json read back
    cache_key_file: Path | None = None  # the per-user MAC key of the cache (default: outside the repository)
    # `verify --executor ray`: runs go to a cluster (`ray_dispatch.RayDispatch`); None runs them here.
    dispatch: Any = None


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Runner:
    def __init__(self, options: RunnerOptions, gpu_lock: threading.Semaphore | None = None) -> None:
        self.o = options
        self.cache = RunCache(options.state_dir, options.cache_key_file)
        # One lock for every runner of a `verify` (one per seed): GPU runs never overlap across them.
        self._gpu_lock = gpu_lock or threading.Semaphore(1)
        self._secrets = secret_values()
        self._sweep_abandoned_work()

    def _sweep_abandoned_work(self) -> None:
        """Remove run folders an interrupted `verify` left behind. A live run holds an flock on its
        folder, so a folder whose lock can be taken belongs to no running `verify`."""
        work = self.o.state_dir / "work"
        if not work.is_dir():
            return
        for folder in work.iterdir():
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                if folder.is_symlink() or folder.is_file():
                    folder.unlink(missing_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # another verify is running it
            try:
                shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(fd)

    # --- the whole selection ---------------------------------------------------------------

    def run_all(
        self,
        jobs: list[Job],
        parallel: int = 1,
        gpu_parallel: int = 1,
        on_start: Callable[[Job], None] | None = None,
        on_finish: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        self._gpu_lock = threading.Semaphore(max(1, gpu_parallel))
        results: dict[str, Result] = {}

        def one(job: Job) -> Result:
            if on_start:
                on_start(job)
            try:
                result = self.run(job)
            except Exception as exc:  # a runner bug must not take the other modules down
                result = Result(job.name, "error", f"fmbuild failed while running it: {type(exc).__name__}: {exc}",
                                scale=self.o.scale, seed=self.o.seed, date=utc_now())
            if on_finish:
                on_finish(result)
            return result

        if parallel <= 1 or len(jobs) <= 1:
            for job in jobs:
                results[job.name] = one(job)
        else:
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fmbuild-verify") as pool:
                for job, result in zip(jobs, pool.map(one, jobs), strict=True):
                    results[job.name] = result
        return [results[job.name] for job in jobs]

    # --- one module ----------------------------------------------------------------------

    def run(self, job: Job) -> Result:
        o = self.o
        base = dict(module=job.name, scale=o.scale, seed=o.seed, date=utc_now())
        spec = job.spec
        if spec.errors:
            return Result(status="error", reason="; ".join(spec.errors), **base)
        if o.dispatch is not None:
            device, why = cluster_device(job.declared_device(), o.dispatch.gpus(), o.device_choice)
        else:
            device, why = module_device(job.declared_device(), o.host_device, o.device_choice)
        if device is None:
            return Result(status="skipped", reason=why, **base)
        missing = [r for r in spec.requires if not _importable(r)]
        if missing:
            return Result(status="skipped", reason=missing_reason(missing), **base)
        env_files, not_passed, why = self._declared_files(spec)
        if why:
            return Result(status="skipped", reason=why, device=device, not_passed=not_passed, **base)

        state = o.state_dir
        digest = inputs_hash(spec.path, spec, o.project_root)
        env = environment(spec, state, digest)
        if device == "cuda":
            env["gpu"] = o.gpu.name
        if env_files:  # a different model file is a different experiment
            env["files"] = {variable: file_identity(path) for variable, path in env_files}
        timeout = self._timeout(job)
        key = self._key(spec.name, digest, env, device, timeout, env_files, o.executor.name)
        common = dict(inputs_hash=digest, key=key, environment=env, device=device, not_passed=not_passed, **base)

        if o.use_cache:
            hit = self.cache.get(key, spec.name, o.scale)
            if hit is not None:
                data = hit.data
                result = Result(
                    status="passed", cached=True, metrics=data.get("metrics", {}),
                    duration_s=float(data.get("duration_s", 0.0)), isolation=data.get("isolation", ""),
                    log_tail=data.get("log_tail", ""), returncode=0, run_dir=hit.run_dir,
                    artifacts=list(data.get("artifacts", [])), **{**common, "date": data.get("date", base["date"])},
                )
                result.entry = hit
                self._judge(job, result)
                self._maybe_record(job, result, hit.out_dir, hit.log_path, hit)
                return result

        return self._execute(job, device, env_files, common, timeout)

    def _key(self, module: str, digest: str, env: dict[str, Any], device: str, timeout: int,
             env_files: list[tuple[str, Path]], isolation: str) -> str:
        o = self.o
        return cache_key(digest, env, device, o.scale, o.seed, run={
            "module": module, "timeout": timeout, "cell_timeout": o.cell_timeout,
            "limits": [o.limits.memory_mb, o.limits.max_processes, o.limits.max_file_mb, o.limits.max_log_bytes,
                       o.limits.max_output_mb],
            "max_metrics_bytes": o.max_metrics_bytes,
            "isolation": isolation, "passed_env": sorted(v for v, _p in env_files),
            # thread counts, locale and GPU selection reach the run and can move its numbers
            "environ": {k: os.environ[k] for k in ENV_PASSTHROUGH if k in os.environ},
        })

    def _timeout(self, job: Job) -> int:
        return self.o.timeout_override or job.timeout(self.o.default_timeout)

    def _declared_files(self, spec: ModuleSpec) -> tuple[list[tuple[str, Path]], list[str], str]:
        """The files named by the variables the module declares (`env`, `optional_env`) that the
        project or the verifier lets in; the declared variables left out; and a skip reason when a
        required one is missing or not allowed."""
        allowed = set(self.o.pass_env)
        files: list[tuple[str, Path]] = []
        not_passed: list[str] = []
        for variable, what in spec.env.items():
            refused = pass_env_problem(variable)
            if refused:
                return [], [variable], f"needs {variable} ({what}), which is never passed: {refused}"
            if variable not in allowed:
                return [], [variable], (f"needs {variable} ({what}), which the project does not pass into a "
                                        f"sandbox (allow it in fmbuild.toml [evidence] pass_env, or: --pass-env {variable})")
            value = os.environ.get(variable, "")
            hint = " (declare it under [optional_env] if the module runs without it)"
            if not value:
                return [], [], f"needs {variable} ({what}); the variable is not set{hint}"
            path = Path(value).expanduser()
            if not path.exists():
                return [], [], f"needs {variable} ({what}); {value} does not exist"
            if not path.is_file():
                return [], [], f"needs {variable} ({what}); {value} is not a file"
            files.append((variable, path.absolute()))
        for variable in spec.optional_env:
            value = os.environ.get(variable, "")
            if variable not in allowed or pass_env_problem(variable):
                if value:
                    not_passed.append(variable)
                continue
            if value and Path(value).expanduser().is_file():
                files.append((variable, Path(value).expanduser().absolute()))
        return files, not_passed, ""

    def _environment(self, device: str, env_files: list[tuple[str, Path]], spec: ModuleSpec) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {key: os.environ[key] for key in ENV_PASSTHROUGH if key in os.environ}
        env.setdefault("LANG", "C.UTF-8")
        env.update(
            PATH=f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            FMBUILD_DEVICE=device,
            FMBUILD_SEED=str(self.o.seed),
            FMBUILD_SCALE=self.o.scale,
            FMBUILD_MODULE=spec.name,
            FMBUILD_PARAMS=json.dumps(spec.params, sort_keys=True, default=str),
            PYTHONHASHSEED=str(self.o.seed),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
        )
        commit = _head_commit(self.o.project_root)
        if commit:
            # .git is hidden inside the sandbox; modules that record lineage read the commit here.
            env["FMBUILD_COMMIT"] = commit
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        for variable, path in env_files:
            env[variable] = str(path)
        return env

    def _command(self, spec: ModuleSpec, timeout: int) -> list[str]:
        entry = str(spec.path / (spec.entry or "run.py"))
        if spec.entry == "notebook.ipynb":
            cell_timeout = self.o.cell_timeout or timeout
            return [sys.executable, "-m", "fmbuild.evidence.notebook_driver", entry, "--cell-timeout", str(cell_timeout)]
        return [sys.executable, entry]

    def _execute(self, job: Job, device: str, env_files: list[tuple[str, Path]], common: dict[str, Any],
                 timeout: int) -> Result:
        work = self.o.state_dir / "work" / f"{job.spec.name}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        try:
            with _folder_lock(work):  # held while the folder is in use: the sweep leaves it alone
                return self._execute_in(job, device, env_files, common, timeout, work)
        except BaseException:  # interrupted: a half-finished run leaves nothing behind
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _execute_in(self, job: Job, device: str, env_files: list[tuple[str, Path]], common: dict[str, Any],
                    timeout: int, work: Path) -> Result:
        o = self.o
        spec = job.spec
        out_dir, tmp_dir = work / "out", work / "tmp"
        out_dir.mkdir()
        tmp_dir.mkdir()
        limits = Limits(timeout, o.limits.memory_mb, o.limits.max_processes, o.limits.max_file_mb, o.limits.max_log_bytes,
                        o.limits.max_output_mb)
        launch = Launch(
            argv=self._command(spec, timeout),
            cwd=spec.path,
            project_root=o.project_root,
            out_dir=out_dir,
            tmp_dir=tmp_dir,
            env=self._environment(device, env_files, spec),
            ro_files=[p for _, p in env_files],
            devices=list(o.gpu.device_nodes) if device == "cuda" else [],
        )
        replacements: dict[str, str] = {}
        problems: list[safe_read.OutputFile] = []
        if o.dispatch is not None:
            remote = self._run_remote(job, launch, limits, device, env_files, common, out_dir)
            if isinstance(remote, Result):
                return remote
            done, isolation, replacements, problems = remote.done, remote.isolation_text, remote.replacements, remote.problems
        else:
            isolation = o.executor.describe(limits, gpu=device == "cuda")
            if device == "cuda":
                with self._gpu_lock:
                    done = o.executor.run(launch, limits)
            else:
                done = o.executor.run(launch, limits)

        log_text = self._clean_log(done.log.decode("utf-8", "replace"), out_dir, tmp_dir, replacements)
        if done.log_truncated:
            log_text += f"\n[fmbuild: the run printed {done.log_total_bytes} bytes; kept {len(done.log)}]\n"
        for variable in common.get("not_passed", []):
            log_text += (f"[fmbuild: {variable} is declared by the module but was not passed: only what fmbuild.toml "
                         "[evidence] pass_env or --pass-env allows enters a sandbox, never a credential]\n")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        outputs = sorted([*safe_read.walk(out_dir), *problems], key=lambda item: item.rel)
        for item in outputs:
            if item.problem:
                log_text += f"[fmbuild: output {item.rel} not read, copied or listed: it is {item.problem}]\n"
        _write_new(work / "log.txt", log_text)
        result = Result(status="passed", isolation=isolation, duration_s=done.duration_s,
                        returncode=done.returncode, log_tail=tail_lines(log_text, LOG_TAIL_LINES), run_dir=work, **common)

        if done.over_output:
            result.status = "error"
            result.reason = (f"the run's files took {done.output_bytes // MB} MB, over its {limits.max_output_mb} MB "
                             "limit for all its files together; it was stopped and its outputs removed")
            shutil.rmtree(out_dir, ignore_errors=True)
        elif done.timed_out:
            result.status, result.reason = "timeout", f"timed out after {timeout} s; the process tree was killed"
        elif done.returncode != 0:
            result.status, result.reason = "error", _exit_reason(done.returncode, done.signal_name, log_text, limits)
            if done.oom_killed:
                result.reason = f"killed: the run went over its {limits.memory_mb} MB memory limit (memory cgroup)"
        else:
            try:
                result.metrics = read_metrics(out_dir, o.max_metrics_bytes)
            except MetricsError as exc:
                result.status, result.reason = "error", str(exc)
            else:
                result.artifacts = [i.rel for i in outputs if not i.problem and i.rel != METRICS_FILE]
                self._judge(job, result)
        if done.killed_leftovers and result.status == "passed":
            result.log_tail += f"\n[fmbuild: killed {done.killed_leftovers} process(es) the module left running]"

        if result.status == "passed":
            try:
                data = self._cache_data(result, out_dir, work / "log.txt")
            except (OSError, ValueError) as exc:  # an output changed under us, or a value JSON cannot hold
                result.status, result.reason = "error", f"the run's outputs could not be kept: {exc}"
                result.run_dir = self._keep_failure(spec.name, work)
                return result
            entry = self.cache.put(result.key, data, work)
            result.run_dir, result.entry = entry.run_dir, entry
            self._maybe_record(job, result, entry.out_dir, entry.log_path, entry)
        else:
            result.run_dir = self._keep_failure(spec.name, work)
            if o.record and o.scale == "full":
                result.record = f"not written: the run {result.status}"
        return result

    def _run_remote(self, job: Job, launch: Launch, limits: Limits, device: str, env_files: list[tuple[str, Path]],
                    common: dict[str, Any], out_dir: Path) -> Any:
        """Run on the cluster; returns the `RemoteRun`, or the final `Result` when no run came back.
        The outputs land in `out_dir`; the cache key follows the isolation and GPU the worker used."""
        from fmbuild.evidence.parcel import ParcelError, unpack_outputs

        spec = job.spec
        venv = sys.prefix if sys.prefix != sys.base_prefix else None
        remote = self.o.dispatch.run(spec, common["inputs_hash"], launch, limits, device, dict(env_files),
                                     sys.executable, venv)
        if remote.failure:
            result = Result(status=remote.status, reason=remote.failure, node=remote.node,
                            duration_s=remote.done.duration_s, **common)
            if self.o.record and self.o.scale == "full":
                result.record = f"not written: the run {result.status}"
            return result
        try:
            unpack_outputs(remote.outputs, out_dir)
        except (ParcelError, OSError) as exc:
            return Result(status="error", reason=f"the worker's outputs could not be taken in: {exc}", node=remote.node,
                          **common)
        env = common["environment"]
        if device == "cuda" and remote.gpu:
            env["gpu"] = remote.gpu
        worker_env = {k: v for k, v in remote.environment.items() if env.get(k) != v}
        if worker_env:  # named in the record: the numbers came from another Python or other packages
            env["worker"] = {"node": remote.node, **worker_env}
        common["key"] = self._key(spec.name, common["inputs_hash"], env, device, int(limits.timeout_s), env_files,
                                  remote.isolation)
        common["node"] = remote.node
        return remote

    def _clean_log(self, text: str, out_dir: Path, tmp_dir: Path, extra: dict[str, str] | None = None) -> str:
        replacements = {str(out_dir): "$FMBUILD_OUT", str(tmp_dir): "$TMPDIR", SANDBOX_OUT: "$FMBUILD_OUT",
                        str(self.o.project_root): ".", **(extra or {})}
        home = str(Path.home())
        if home not in ("/", ""):
            replacements[home] = "~"
        for secret in self._secrets:
            replacements[secret] = "[redacted]"
        return sanitize_log(text, replacements)

    def _judge(self, job: Job, result: Result) -> None:
        """Check every claim of every citing note; at smoke scale only that the metrics exist."""
        judge: Callable[[Claim, dict[str, Any]], Verdict] = check_presence if self.o.scale == "smoke" else check_claim
        result.claims = []
        for note in job.notes:
            for claim in note.claims:
                v = judge(claim, result.metrics)
                result.claims.append(ClaimResult(note.note, v.metric, v.expected, v.measured, v.ok, v.message))
            for metric, why in note.invalid:  # `fmbuild check` reports these as claim-invalid
                result.claims.append(ClaimResult(note.note, metric, "", None, False, f"invalid claim: {why}"))
        result.status, reason = claims_verdict(result.claims)
        if reason:
            result.reason = reason

    def _cache_data(self, result: Result, out_dir: Path, log_path: Path) -> dict[str, Any]:
        """The cache entry: the result and the sha256 of every file the record would copy."""
        cap = self.o.limits.max_output_mb * MB
        files = {rel: safe_read.file_sha256(out_dir, rel, cap) for rel in result.artifacts}
        log_sha = hashlib.sha256(log_path.read_bytes()).hexdigest()
        return {
            "module": result.module, "scale": result.scale, "seed": result.seed, "metrics": result.metrics,
            "duration_s": result.duration_s, "device": result.device, "isolation": result.isolation,
            "environment": result.environment, "date": result.date, "log_tail": result.log_tail,
            "artifacts": result.artifacts, "inputs_hash": result.inputs_hash, "fmbuild": __version__,
            "files": files, "log_sha256": log_sha,
        }

    def _keep_failure(self, name: str, work: Path) -> Path:
        """Keep the latest failed run of a module for inspection: `.fmbuild/evidence/last/<name>`
        (its outputs only when they are small: a failed run must not keep filling the disk)."""
        out = work / "out"
        used = safe_read.tree_bytes(out) if out.is_dir() else 0
        if used > KEEP_FAILED_OUTPUT_BYTES:
            shutil.rmtree(out, ignore_errors=True)
            with contextlib.suppress(OSError):
                with (work / "log.txt").open("a", encoding="utf-8") as log:
                    log.write(f"[fmbuild: the failed run's outputs ({used // MB} MB) were removed]\n")
        target = self.o.state_dir / "last" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # Two seeds of one module can fail at the same moment (--jobs 2), and another fmbuild
        # process may share the state folder: the lock orders this process's threads, the retry
        # the rest. Whichever lands last is "the latest failed run"; none of them raises.
        with _KEEP_FAILURE_LOCK:
            for _ in range(5):
                if target.exists():
                    trash = target.parent / f".old-{uuid.uuid4().hex[:8]}"
                    with contextlib.suppress(FileNotFoundError):
                        target.rename(trash)
                    shutil.rmtree(trash, ignore_errors=True)
                try:
                    work.rename(target)
                    return target
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
        return work  # still kept, under its own work folder

    def _maybe_record(self, job: Job, result: Result, out_dir: Path, log_path: Path, entry: CacheEntry) -> None:
        if not self.o.record:
            return
        if self.o.scale != "full":
            result.record = "not written: smoke runs leave no record"
            return
        if result.status != "passed":
            result.record = f"not written: the run {result.status}"
            return
        record = Record(
            module=result.module, status=result.status, inputs_hash=result.inputs_hash, metrics=result.metrics,
            claims=[c.as_dict() for c in result.claims], duration_s=round(result.duration_s, 3),
            device=result.device, isolation=result.isolation, environment=result.environment, seed=result.seed,
            scale=result.scale, date=result.date, fmbuild=__version__, log_tail=result.log_tail, artifacts=[],
        )
        result.record = record_from_entry(job.spec.path, record, entry)


def claims_verdict(claims: list[Any]) -> tuple[str, str]:
    """A run's status from its judged claims, with the one-line reason: the first unmet claim."""
    unmet = [c for c in claims if not c.ok]
    if unmet:
        first = unmet[0]
        more = f" (+{len(unmet) - 1} more)" if len(unmet) > 1 else ""
        return "failed", f"{first.metric} {first.expected}: {first.message}{more}"
    return "passed", ("" if claims else "no claims cite this module")


def record_from_entry(module_dir: Path, record: Record, entry: CacheEntry) -> str:
    """Write the committed record of a passed run, as far as its (MAC-checked) cache entry vouches
    for it: the log and every copied file must hash to what the entry recorded at run time.
    Returns what happened, for the output ("written" or "not written: why")."""
    try:
        log_bytes = safe_read.read_bytes(entry.log_path.parent, entry.log_path.name, 64 * MB)
    except OSError as exc:
        return f"not written: the run's log cannot be read: {exc}"
    if hashlib.sha256(log_bytes).hexdigest() != entry.data.get("log_sha256"):
        return "not written: the run's log changed since the run (run again with --no-cache)"
    try:
        write_record(module_dir, record, entry.out_dir, log_bytes.decode("utf-8", "replace"), expected=entry.files)
    except RecordError as exc:
        return f"not written: {exc} (run again with --no-cache)"
    except (OSError, ValueError) as exc:
        return f"not written: {exc}"
    return "written"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_new(path: Path, text: str) -> None:
    """Write a runner-made file in a run folder: never through a link the module left there."""
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _exit_reason(code: int | None, signame: str | None, log_text: str, limits: Limits) -> str:
    if code == 127 and "could not start" in log_text:
        return log_text.strip().splitlines()[-1]
    reason = f"exited with code {code}"
    if signame:
        reason = f"killed by {signame}"
        if signame == "SIGXFSZ":
            reason += f" (wrote a file over the {limits.max_file_mb} MB limit)"
        elif signame == "SIGKILL":
            reason += " (out of memory?)"
    if "MemoryError" in log_text[-20000:]:
        return reason + f"; MemoryError: the run hit the {limits.memory_mb} MB memory limit"
    lines = [line.strip() for line in log_text.strip().splitlines()[-5:] if line.strip()]
    if lines and _EXCEPTION_LINE.match(lines[-1]):
        reason += f": {lines[-1][:200]}"
    return reason


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")


@functools.lru_cache(maxsize=4)
def _head_commit(root: Path) -> str:
    """The project's HEAD commit, or '' outside a git checkout (never invented)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    value = done.stdout.strip()
    return value if done.returncode == 0 and len(value) == 40 else ""
