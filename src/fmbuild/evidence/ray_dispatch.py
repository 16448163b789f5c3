"""`verify --executor ray`: each module run is one Ray task on an existing cluster (or a local one).

The runner does everything a run is judged by on the caller (selection, device, cache key, cache,
claims, records); `RayDispatch.run` only replaces the step that executes the module: it ships the
module's files and declared inputs (the content the cache key hashed), asks the cluster for what the
run needs (the CPUs its module.toml declares, one by default; the run's memory limit; one GPU for a
CUDA run, or a share of one with
`--gpu-jobs`), and brings back the log, the outputs and where it ran.

Faults: Ray has no per-task timeout (ray-project/ray#18916), so the worker enforces the module's
timeout exactly as the local runner does, and the caller cancels a task that gives no answer
`ANSWER_GRACE_S` after that. The task is a generator whose first item says that it started and
where, so time spent queued for resources does not count. A task whose worker or node dies is
retried once on another node where one can take it, then reported as `error`. Ctrl-C cancels
every task in flight. A failed, cancelled or lost task never reaches the cache or the records.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from fmbuild.errors import FmError
from fmbuild.evidence.contract import ModuleSpec
from fmbuild.evidence.isolation import ExecResult, Launch
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.parcel import module_archive, portable_launch
from fmbuild.evidence.safe_read import OutputFile
from fmbuild.evidence.worker import fmbuild_library, run_shipped, where

ANSWER_GRACE_S = 120.0  # after the module's own timeout, for unpacking, packing and the transfer
POLL_S = 0.5


class DispatchError(FmError, RuntimeError):
    """Ray is missing or the cluster cannot be reached: a usage error of `verify`."""


class Cancelled(RuntimeError):
    pass


def _task(request: dict[str, Any], module_tar: bytes, *file_data: bytes) -> Iterator[dict[str, Any]]:
    """The Ray task: say where it runs, then run the module there."""
    import ray

    here = where()
    here["node"] = ray.get_runtime_context().get_node_id()
    yield here
    names = list(request["launch"].get("files", {}))
    yield run_shipped(request, module_tar, dict(zip(names, file_data, strict=True)))


@dataclass
class RemoteRun:
    """What came back from a worker, in the runner's terms."""

    done: ExecResult
    isolation: str = ""  # 'bubblewrap' | 'subprocess' (the worker's), for the cache key
    isolation_text: str = ""
    node: str = ""  # where it ran, for the output
    gpu: str = ""
    replacements: dict[str, str] = field(default_factory=dict)  # the worker's paths, for the log
    problems: list[OutputFile] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    outputs: bytes = b""
    failure: str = ""  # set when no run came back: why (then `done` is empty)
    status: str = "error"  # of a failure: 'error' | 'timeout' | 'skipped'


def _empty(seconds: float = 0.0) -> ExecResult:
    return ExecResult(returncode=None, timed_out=False, duration_s=seconds, log=b"", log_total_bytes=0, log_truncated=False)


class RayDispatch:
    name = "ray"

    def __init__(self, address: str | None, isolation: str = "auto", gpu_jobs: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise DispatchError("--executor ray needs Ray on this machine: pip install 'fmbuild[ray]'") from None
        self.ray = ray
        self.isolation = isolation
        self.gpu_share = 1.0 / max(1, gpu_jobs)
        self.address = address or "local"
        options: dict[str, Any] = dict(
            address=address, logging_level="ERROR", log_to_driver=False, configure_logging=True,
            # The worker runs the caller's fmbuild, not whatever its own disk holds.
            runtime_env={"py_modules": [str(fmbuild_library() / "fmbuild")]},
        )
        if address is None:
            options["include_dashboard"] = False
        try:
            ray.init(**options)
        except ValueError as exc:  # e.g. ray:// without ray[client]
            raise DispatchError(f"--ray-address {address}: {exc}") from None
        except (ConnectionError, RuntimeError) as exc:
            raise DispatchError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}") from None
        self._remote = ray.remote(_task)
        self._gpus: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._live: set[Any] = set()
        self._shipped: dict[tuple[str, str], Any] = {}  # (module, inputs hash) -> object ref, one per verify

    # --- the cluster ---------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def gpus(self) -> float:
        """The cluster's GPUs, read once: the runner asks for every run."""
        if self._gpus is None:
            self._gpus = sum(float(n.get("Resources", {}).get("GPU", 0)) for n in self.nodes())
        return self._gpus

    def describe(self) -> str:
        nodes = self.nodes()
        cpus = sum(float(n.get("Resources", {}).get("CPU", 0)) for n in nodes)
        return (f"Ray {self.ray.__version__} ({self.address}): {len(nodes)} node{'s' if len(nodes) != 1 else ''}, "
                f"{cpus:g} CPUs, {self.gpus():g} GPUs")

    def infeasible(self, needs: dict[str, float]) -> str:
        """Why no alive node could ever run a task asking for `needs` ('' when one can)."""
        for node in self.nodes():
            have = node.get("Resources", {})
            if all(float(have.get(k, 0)) >= v for k, v in needs.items() if v):
                return ""
        asked = ", ".join(f"{v:g} {k}" if k != "memory" else f"{v / MB:.0f} MB memory" for k, v in needs.items() if v)
        return f"no node of the Ray cluster offers {asked}"

    def shutdown(self) -> None:
        self.ray.shutdown()

    def cancel_all(self) -> None:
        """Ctrl-C: stop waiting and cancel every task in flight."""
        self._stop.set()
        with self._lock:
            live = list(self._live)
        for ref in live:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or gone: nothing to cancel
                pass

    # --- one run -------------------------------------------------------------------------------

    def run(self, spec: ModuleSpec, digest: str, launch: Launch, limits: Limits, device: str,
            declared_files: dict[str, Path], python: str, venv: str | None) -> RemoteRun:
        ray = self.ray
        needs = {"CPU": float(spec.cpus), "memory": float(limits.memory_mb * MB), "GPU": self.gpu_share if device == "cuda" else 0.0}
        why = self.infeasible(needs)
        if why:
            return RemoteRun(_empty(), failure=why, status="skipped")
        key = (spec.name, digest)
        with self._lock:
            if key not in self._shipped:
                self._shipped[key] = ray.put(module_archive(spec, launch.project_root))
            module_ref = self._shipped[key]
        file_refs = [ray.put(path.read_bytes()) for path in declared_files.values()]
        request = make_request(spec, launch, limits, device, declared_files, python, venv, self.isolation)
        deaths: list[str] = []
        avoid: str | None = None
        for _attempt in range(2):
            try:
                return self._attempt(request, module_ref, file_refs, needs, limits, avoid)
            except _WorkerLost as lost:
                deaths.append(f"on node {lost.node[:12] or 'unknown'}: {lost.why}")
                avoid = lost.node or None
            except Cancelled:
                return RemoteRun(_empty(), failure="cancelled (interrupted); nothing was kept")
        return RemoteRun(_empty(), failure="the Ray worker running it was lost twice, so it was not retried again: "
                                           + "; ".join(f"({i}) {d}" for i, d in enumerate(deaths, 1)))

    def _options(self, needs: dict[str, float], avoid: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": needs["CPU"], "memory": needs["memory"], "max_retries": 0,
                                   "num_returns": "streaming"}
        if needs["GPU"]:
            options["num_gpus"] = needs["GPU"]
        if avoid:  # retry elsewhere: any other alive node that can take it
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            for node in self.nodes():
                have = node.get("Resources", {})
                if node["NodeID"] != avoid and all(float(have.get(k, 0)) >= v for k, v in needs.items() if v):
                    options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
                    break
        return options

    def _wait(self, gen: Any, deadline: float | None) -> bool:
        """Wait for the generator's next item; False when the deadline passed first."""
        while True:
            if self._stop.is_set():
                raise Cancelled()
            ready, _ = self.ray.wait([gen], timeout=POLL_S)
            if ready:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False

    def _attempt(self, request: dict[str, Any], module_ref: Any, file_refs: list[Any], needs: dict[str, float],
                 limits: Limits, avoid: str | None) -> RemoteRun:
        ray = self.ray
        gen = self._remote.options(**self._options(needs, avoid)).remote(request, module_ref, *file_refs)
        with self._lock:
            self._live.add(gen)
        node = ""
        try:
            self._wait(gen, None)  # queued until the cluster has room; infeasible asks never get here
            here = ray.get(next(gen))
            node = here["node"]
            deadline = time.monotonic() + limits.timeout_s + ANSWER_GRACE_S
            if not self._wait(gen, deadline):
                ray.cancel(gen, force=True)
                return RemoteRun(_empty(limits.timeout_s), status="timeout", node=self._label(here),
                                 failure=(f"the Ray task on {self._label(here)} gave no answer {ANSWER_GRACE_S:.0f} s "
                                          f"after its {limits.timeout_s:g} s timeout; it was cancelled"))
            back = ray.get(next(gen))
        except Cancelled:
            ray.cancel(gen, force=True)
            raise
        except StopIteration:
            raise _WorkerLost(node, "the task ended without a result") from None
        except ray.exceptions.RayTaskError as exc:  # fmbuild itself failed on the worker
            return RemoteRun(_empty(), node=node[:12], failure=f"fmbuild failed on the worker: {_first_line(exc)}")
        except ray.exceptions.RuntimeEnvSetupError as exc:
            return RemoteRun(_empty(), failure=f"the worker could not set up fmbuild's runtime environment: {_first_line(exc)}")
        except ray.exceptions.TaskCancelledError:
            raise Cancelled() from None
        except ray.exceptions.RayError as exc:  # the worker or its node died: lost, not failed
            raise _WorkerLost(node, _first_line(exc)) from None
        finally:
            with self._lock:
                self._live.discard(gen)
        return as_remote_run(back, self._label(here))

    @staticmethod
    def _label(here: dict[str, str]) -> str:
        return f"ray node {here['node'][:12]} ({here['host']})"


def make_request(spec: ModuleSpec, launch: Launch, limits: Limits, device: str, declared_files: dict[str, Path],
                 python: str, venv: str | None, isolation: str) -> dict[str, Any]:
    """What a worker needs besides the files: the portable launch, limits, isolation and device."""
    return {
        "launch": portable_launch(launch, python, venv, declared_files),
        "module_rel": spec.path.resolve().relative_to(launch.project_root.resolve()).as_posix(),
        "limits": {"timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb,
                   "max_processes": limits.max_processes, "max_file_mb": limits.max_file_mb,
                   "max_log_bytes": limits.max_log_bytes, "max_output_mb": limits.max_output_mb},
        "isolation": isolation, "device": device,
    }


def as_remote_run(back: dict[str, Any], node: str) -> RemoteRun:
    """A worker's answer (`worker.run_shipped`) in the runner's terms."""
    if "refused" in back:
        return RemoteRun(_empty(), node=node, failure=back["refused"])
    paths = back["paths"]
    replacements = {paths["out"]: "$FMBUILD_OUT", paths["tmp"]: "$TMPDIR", paths["root"]: "."}
    if paths["home"] not in ("/", ""):
        replacements[paths["home"]] = "~"
    return RemoteRun(
        done=ExecResult(log=back["log"], **back["exec"]), isolation=back["isolation"],
        isolation_text=back["isolation_text"], node=node, gpu=back["gpu"], replacements=replacements,
        problems=[OutputFile(*p) for p in back["problems"]], environment=back["environment"], outputs=back["outputs"],
    )


class _WorkerLost(Exception):
    def __init__(self, node: str, why: str) -> None:
        super().__init__(why)
        self.node, self.why = node, why


def _first_line(exc: BaseException) -> str:
    """One line of a Ray error: the worker's own exception line when the text carries a traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if "Traceback" in str(exc) else lines[0])[:300]
