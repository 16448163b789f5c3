"""Resource limits for a run: rlimits set in the child before exec, a pids cgroup, and for GPU
runs a memory cgroup.

RLIMIT_NPROC is not enforced for root (the kernel exempts uid 0 and CAP_SYS_RESOURCE), and a
bubblewrap user namespace maps the sandbox's uid back to root, so it is no limit here. The real
process limit is a pids cgroup (v1 `/sys/fs/cgroup/pids` or a cgroup v2 tree with the `pids`
controller) created per run when the host lets us write it. Its `cgroup.procs` also gives the
whole process tree to kill, even processes that left the session with `setsid`.

Memory: every run gets a memory cgroup when the host lets us create one: resident memory of all
its processes together (four children of 2 GB each are 8 GB of the run), and the kernel kills the
run when it goes over. A CPU run also gets RLIMIT_AS per process (a clean MemoryError in a module
that asks for too much at once). CUDA reserves far more address space than any sensible RLIMIT_AS,
so a GPU run has the cgroup only. Without a writable memory cgroup a CPU run is bounded per
process only (RLIMIT_AS), which `describe()` says.

Disk: RLIMIT_FSIZE bounds each file; the runner bounds all the files of a run together
(`max_output_mb`, see `isolation.OutputWatch`).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float
    memory_mb: int  # address space (RLIMIT_AS)
    max_processes: int  # pids cgroup (and RLIMIT_NPROC where it is enforced)
    max_file_mb: int  # RLIMIT_FSIZE
    max_log_bytes: int
    max_output_mb: int = 2048  # every file of the run together (output folder and /tmp)


def _candidate_roots() -> list[Path]:
    roots = [Path("/sys/fs/cgroup/pids")]
    for v2 in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        controllers = v2 / "cgroup.controllers"
        try:
            if controllers.is_file() and "pids" in controllers.read_text().split():
                roots.append(v2)
        except OSError:
            continue
    return roots


class PidsCgroup:
    """One run's pids cgroup: create, join (from the child), kill everything in it, remove."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._procs = str(path / "cgroup.procs")

    @classmethod
    def create(cls, max_processes: int) -> PidsCgroup | None:
        for root in _candidate_roots():
            base = root / "fmbuild"
            try:
                base.mkdir(exist_ok=True)
                if root.name != "pids":  # cgroup v2: children need the controller delegated
                    _enable_pids(root)
                    _enable_pids(base)
                path = base / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                path.mkdir()
                (path / "pids.max").write_text(str(max_processes))
                return cls(path)
            except OSError:
                continue
        return None

    def join_from_child(self) -> None:
        """Called in the forked child before exec: only raw syscalls, no locks."""
        _join(self._procs)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in Path(self._procs).read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, deadline_s: float = 5.0) -> bool:
        """SIGKILL every process in the group until it is empty (a fork bomb races us; we win
        because the group cannot grow past pids.max). True when the group ended empty."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        return not self.pids()

    def peak(self) -> int | None:
        try:
            return int((self.path / "pids.peak").read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        _remove_cgroup(self.path, on_busy=lambda: self.kill_all(0.2))


class MemoryCgroup:
    """A memory limit on resident memory for one run (cgroup v1 `memory` or v2 `memory.max`)."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2
        self._procs = str(path / "cgroup.procs")

    @classmethod
    def create(cls, limit_mb: int) -> MemoryCgroup | None:
        for base, v2 in _memory_bases():
            try:
                path = base / f"fmbuild-run-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                path.mkdir()
            except OSError:
                continue
            try:
                limit = str(limit_mb * MB)
                (path / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(limit)
                if v2 and (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")  # over the limit means killed, not swapped
                elif not v2 and (path / "memory.memsw.limit_in_bytes").exists():
                    try:  # memory + swap: the same bound (some kernels lack swap accounting)
                        (path / "memory.memsw.limit_in_bytes").write_text(limit)
                    except OSError:
                        pass
                return cls(path, v2)
            except OSError:
                _rmdir_quietly(path)
        return None

    def join_from_child(self) -> None:
        _join(self._procs)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the run for going over the limit."""
        try:
            if self.v2:
                events = (self.path / "memory.events").read_text()
                return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in events.splitlines())
            control = (self.path / "memory.oom_control").read_text()
            for line in control.splitlines():
                if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                    return True
            return int((self.path / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        _remove_cgroup(self.path)


def _memory_bases() -> list[tuple[Path, bool]]:
    """Where this process may create a child memory cgroup: under its own cgroup."""
    bases: list[tuple[Path, bool]] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return bases
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            bases.append((Path("/sys/fs/cgroup/memory") / path.lstrip("/"), False))
        elif controllers == "":
            for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
                folder = root / path.lstrip("/")
                try:
                    if "memory" in (folder / "cgroup.subtree_control").read_text().split():
                        bases.append((folder, True))
                except OSError:
                    continue
    return bases


def _join(procs: str) -> None:
    """Move the calling process into the cgroup whose `cgroup.procs` is `procs`. Runs in a
    forked child before exec: only raw syscalls, no locks."""
    fd = os.open(procs, os.O_WRONLY)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _enable_pids(folder: Path) -> None:
    control = folder / "cgroup.subtree_control"
    if "pids" not in control.read_text().split():
        control.write_text("+pids")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# The C library, for the calls Python does not wrap (prctl here, renameat2 in records.py).
LIBC = _libc()


def child_setup(limits: Limits, cgroup: PidsCgroup | None, memory_group: MemoryCgroup | None = None,
                address_space: bool = True):  # -> Callable[[], None]
    """The `preexec_fn` for the run: limits, cgroups, and death with the runner.

    `address_space=False` (GPU runs) leaves RLIMIT_AS off: CUDA maps tens of GB of address space.
    """
    memory = limits.memory_mb * MB
    fsize = limits.max_file_mb * MB
    nproc = limits.max_processes

    def setup() -> None:
        if cgroup is not None:
            cgroup.join_from_child()
        if memory_group is not None:
            memory_group.join_from_child()
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except (ValueError, OSError):
            pass
        if LIBC is not None:
            LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return setup


def nproc_enforced() -> bool:
    """Whether RLIMIT_NPROC binds this process (it does not for root)."""
    return os.geteuid() != 0


def _remove_cgroup(path: Path, on_busy: Callable[[], object] | None = None) -> None:
    """rmdir a run's cgroup, retrying while the kernel still counts exiting members."""
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if on_busy is not None:
                on_busy()
            time.sleep(0.02)
