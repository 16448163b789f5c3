"""The evidence runner: run each selected module once, isolated and cached, and judge its claims.

One `Job` is one module with the claims of every note that cites it. `Runner.run(job)` goes:
contract problems → device → required packages and files (→ `skipped` with the reason) → cache
lookup → isolated run → metrics → claims → cache store → committed record (`--record`).
`Runner.run_all(jobs, parallel=N)` runs jobs on a thread pool; runs on the GPU never overlap
unless `gpu_parallel` allows it.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fmbuild import __version__
from fmbuild.evidence.cache import RunCache
from fmbuild.evidence.capture import tail_lines
from fmbuild.evidence.claims import Claim, Verdict, check_claim, check_presence
from fmbuild.evidence.contract import ModuleSpec
from fmbuild.evidence.devices import GpuInfo, module_device
from fmbuild.evidence.fingerprint import cache_key, environment, file_identity, inputs_hash
from fmbuild.evidence.install_hints import missing_reason
from fmbuild.evidence.isolation import SANDBOX_OUT, Executor, Launch
from fmbuild.evidence.limits import Limits
from fmbuild.evidence.records import Record, sanitize_log, secret_values, write_record

STATUSES = ("passed", "failed", "error", "timeout", "skipped")
# Variables passed from the runner's environment when set (nothing secret: locale, threads, GPUs).
ENV_PASSTHROUGH = (
    "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
)
LOG_TAIL_LINES = 40


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
    artifacts: list[str] = field(default_factory=list)
    record: str = ""  # what happened to the committed record with --record

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
            "record": self.record,
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


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Runner:
    def __init__(self, options: RunnerOptions) -> None:
        self.o = options
        self.cache = RunCache(options.state_dir)
        self._gpu_lock = threading.Semaphore(1)
        self._secrets = secret_values()
        self._sweep_abandoned_work()

    def _sweep_abandoned_work(self, older_than_s: float = 24 * 3600) -> None:
        """Remove run folders an interrupted `verify` left behind (old enough not to be another
        `verify` running in this project right now)."""
        work = self.o.state_dir / "work"
        if not work.is_dir():
            return
        cutoff = time.time() - older_than_s
        for folder in work.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue

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
        device, why = module_device(job.declared_device(), o.host_device, o.device_choice)
        if device is None:
            return Result(status="skipped", reason=why, **base)
        missing = [r for r in spec.requires if not _importable(r)]
        if missing:
            return Result(status="skipped", reason=missing_reason(missing), **base)
        env_files, why = self._declared_files(spec)
        if why:
            return Result(status="skipped", reason=why, device=device, **base)

        state = o.state_dir
        digest = inputs_hash(spec.path, spec, o.project_root)
        env = environment(spec, state, digest)
        if device == "cuda":
            env["gpu"] = o.gpu.name
        if env_files:  # a different model file is a different experiment
            env["files"] = {variable: file_identity(path) for variable, path in env_files}
        key = cache_key(digest, env, device, o.scale, o.seed)
        common = dict(inputs_hash=digest, key=key, environment=env, device=device, **base)

        if o.use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                data = hit.data
                result = Result(
                    status="passed", cached=True, metrics=data.get("metrics", {}),
                    duration_s=float(data.get("duration_s", 0.0)), isolation=data.get("isolation", ""),
                    log_tail=data.get("log_tail", ""), returncode=0, run_dir=hit.run_dir,
                    artifacts=list(data.get("artifacts", [])), **{**common, "date": data.get("date", base["date"])},
                )
                self._judge(job, result)
                self._maybe_record(job, result, hit.out_dir, hit.log_path)
                return result

        return self._execute(job, device, env_files, common)

    def _declared_files(self, spec: ModuleSpec) -> tuple[list[tuple[str, Path]], str]:
        """Files named by the module's `env` (missing: skip with the reason) and `optional_env`."""
        files: list[tuple[str, Path]] = []
        for variable, what in spec.env.items():
            value = os.environ.get(variable, "")
            hint = " (declare it under [optional_env] if the module runs without it)"
            if not value:
                return [], f"needs {variable} ({what}); the variable is not set{hint}"
            path = Path(value).expanduser()
            if not path.is_file():
                return [], f"needs {variable} ({what}); {value} does not exist"
            files.append((variable, path.absolute()))
        for variable in spec.optional_env:
            value = os.environ.get(variable, "")
            if value and Path(value).expanduser().is_file():
                files.append((variable, Path(value).expanduser().absolute()))
        return files, ""

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

    def _execute(self, job: Job, device: str, env_files: list[tuple[str, Path]], common: dict[str, Any]) -> Result:
        o = self.o
        spec = job.spec
        timeout = o.timeout_override or job.timeout(o.default_timeout)
        work = o.state_dir / "work" / f"{spec.name}-{uuid.uuid4().hex[:8]}"
        out_dir, tmp_dir = work / "out", work / "tmp"
        out_dir.mkdir(parents=True)
        tmp_dir.mkdir()
        limits = Limits(timeout, o.limits.memory_mb, o.limits.max_processes, o.limits.max_file_mb, o.limits.max_log_bytes)
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
        isolation = o.executor.describe(limits, gpu=device == "cuda")
        if device == "cuda":
            with self._gpu_lock:
                done = o.executor.run(launch, limits)
        else:
            done = o.executor.run(launch, limits)

        log_text = self._clean_log(done.log.decode("utf-8", "replace"), out_dir, tmp_dir)
        if done.log_truncated:
            log_text += f"\n[fmbuild: the run printed {done.log_total_bytes} bytes; kept {len(done.log)}]\n"
        (work / "log.txt").write_text(log_text, encoding="utf-8")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        result = Result(status="passed", isolation=isolation, duration_s=done.duration_s,
                        returncode=done.returncode, log_tail=tail_lines(log_text, LOG_TAIL_LINES), run_dir=work, **common)

        if done.timed_out:
            result.status, result.reason = "timeout", f"timed out after {timeout} s; the process tree was killed"
        elif done.returncode != 0:
            result.status, result.reason = "error", _exit_reason(done.returncode, done.signal_name, log_text, limits)
            if done.oom_killed:
                result.reason = f"killed: the run went over its {limits.memory_mb} MB memory limit (memory cgroup)"
        else:
            metrics, problem = _read_metrics(out_dir)
            if problem:
                result.status, result.reason = "error", problem
            else:
                result.metrics = metrics
                result.artifacts = sorted(
                    p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file() and p.name != "metrics.json"
                )
                self._judge(job, result)
        if done.killed_leftovers and result.status == "passed":
            result.log_tail += f"\n[fmbuild: killed {done.killed_leftovers} process(es) the module left running]"

        if result.status == "passed":
            entry = self.cache.put(result.key, self._cache_data(result), work)
            result.run_dir = entry.run_dir
            self._maybe_record(job, result, entry.out_dir, entry.log_path)
        else:
            result.run_dir = self._keep_failure(spec.name, work)
            if o.record and o.scale == "full":
                result.record = f"not written: the run {result.status}"
        return result

    def _clean_log(self, text: str, out_dir: Path, tmp_dir: Path) -> str:
        replacements = {str(out_dir): "$FMBUILD_OUT", str(tmp_dir): "$TMPDIR", SANDBOX_OUT: "$FMBUILD_OUT",
                        str(self.o.project_root): "."}
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
        unmet = [c for c in result.claims if not c.ok]
        if unmet:
            result.status = "failed"
            first = unmet[0]
            more = f" (+{len(unmet) - 1} more)" if len(unmet) > 1 else ""
            result.reason = f"{first.metric} {first.expected}: {first.message}{more}"
        else:
            result.status = "passed"
            if not result.claims:
                result.reason = "no claims cite this module"

    def _cache_data(self, result: Result) -> dict[str, Any]:
        return {
            "module": result.module, "scale": result.scale, "seed": result.seed, "metrics": result.metrics,
            "duration_s": result.duration_s, "device": result.device, "isolation": result.isolation,
            "environment": result.environment, "date": result.date, "log_tail": result.log_tail,
            "artifacts": result.artifacts, "inputs_hash": result.inputs_hash, "fmbuild": __version__,
        }

    def _keep_failure(self, name: str, work: Path) -> Path:
        """Keep the latest failed run of a module for inspection: `.fmbuild/evidence/last/<name>`."""
        target = self.o.state_dir / "last" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            trash = target.parent / f".old-{uuid.uuid4().hex[:8]}"
            target.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        work.rename(target)
        return target

    def _maybe_record(self, job: Job, result: Result, out_dir: Path, log_path: Path) -> None:
        if not self.o.record:
            return
        if self.o.scale != "full":
            result.record = "not written: smoke runs leave no record"
            return
        if result.status != "passed":
            result.record = f"not written: the run {result.status}"
            return
        try:
            log_text = log_path.read_text(encoding="utf-8")
        except OSError:
            log_text = result.log_tail
        record = Record(
            module=result.module, status=result.status, inputs_hash=result.inputs_hash, metrics=result.metrics,
            claims=[c.as_dict() for c in result.claims], duration_s=round(result.duration_s, 3),
            device=result.device, isolation=result.isolation, environment=result.environment, seed=result.seed,
            scale=result.scale, date=result.date, fmbuild=__version__, log_tail=result.log_tail, artifacts=[],
        )
        try:
            write_record(job.spec.path, record, out_dir, log_text)
        except OSError as exc:
            result.record = f"not written: {exc}"
            return
        result.record = "written"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _read_metrics(out_dir: Path) -> tuple[dict[str, Any], str]:
    path = out_dir / "metrics.json"
    if not path.is_file():
        return {}, "the module exited 0 but wrote no metrics.json to FMBUILD_OUT"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"metrics.json is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return {}, "metrics.json must hold a JSON object of metrics"
    return data, ""


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
