"""Resource limits for a run: rlimits set in the child before exec, and a pids cgroup.

RLIMIT_NPROC is not enforced for root (the kernel exempts uid 0 and CAP_SYS_RESOURCE), and a
bubblewrap user namespace maps the sandbox's uid back to root, so it is no limit here. The real
process limit is a pids cgroup (v1 `/sys/fs/cgroup/pids` or a cgroup v2 tree with the `pids`
controller) created per run when the host lets us write it. Its `cgroup.procs` also gives the
whole process tree to kill, even processes that left the session with `setsid`.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
import uuid
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
    def create(cls, max_processes: int) -> "PidsCgroup | None":
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
        fd = os.open(self._procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

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
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                self.kill_all(0.2)
                time.sleep(0.02)


def _enable_pids(folder: Path) -> None:
    control = folder / "cgroup.subtree_control"
    if "pids" not in control.read_text().split():
        control.write_text("+pids")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def child_setup(limits: Limits, cgroup: PidsCgroup | None):  # -> Callable[[], None]
    """The `preexec_fn` for the run: limits, cgroup, and death with the runner."""
    memory = limits.memory_mb * MB
    fsize = limits.max_file_mb * MB
    nproc = limits.max_processes

    def setup() -> None:
        if cgroup is not None:
            cgroup.join_from_child()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except (ValueError, OSError):
            pass
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return setup


def nproc_enforced() -> bool:
    """Whether RLIMIT_NPROC binds this process (it does not for root)."""
    return os.geteuid() != 0
