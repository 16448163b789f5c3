"""Executors: run one module's command isolated, with limits, a timeout and captured output.

Two executors behind one interface (`Executor.run(launch, limits) -> ExecResult`):

- `BubblewrapExecutor`: a fresh mount namespace that shows only the system folders, the Python
  interpreter and the repository (read-only, `.git` and `.fmbuild` hidden), a writable output
  folder and temporary folder, no network but loopback, its own pid/ipc/uts namespaces, an
  unprivileged uid, a clean environment from an allowlist, death with the runner.
- `SubprocessExecutor`: the fallback where bubblewrap is missing or unusable. Same environment
  allowlist, limits and process-tree kill, but it cannot hide files or the network; it says so.

Both put the run in a pids cgroup and a memory cgroup when the host allows it (see `limits.py`),
and bound the disk space of all the run's files together (`OutputWatch`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from fmbuild.evidence.capture import CappedLog, PipeReader
from fmbuild.evidence.limits import MB, Limits, MemoryCgroup, PidsCgroup, child_setup, nproc_enforced
from fmbuild.evidence.safe_read import tree_bytes

# What the sandbox sees of /etc: what the loader, Python, SSL, locale and fonts need. Nothing else
# (the sandbox uid maps back to root, so any bound root-only file would be readable).
ETC_ALLOW = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
    "ca-certificates.conf", "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "localtime",
    "timezone", "fonts", "mime.types", "os-release", "debian_version", "matplotlibrc", "gai.conf",
    "protocols", "services", "locale.alias", "locale.gen", "machine-id",
)
SYSTEM_DIRS = ("/usr", "/opt")
SYSTEM_LINKS_OR_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SANDBOX_OUT = "/fmbuild/out"
SANDBOX_TMP = "/tmp"
SANDBOX_UID = 65534


@dataclass(slots=True)
class Launch:
    argv: list[str]  # the command, with paths valid inside the sandbox
    cwd: Path  # the module folder
    project_root: Path
    out_dir: Path  # host folder for FMBUILD_OUT
    tmp_dir: Path  # host folder for TMPDIR and HOME
    env: dict[str, str]  # the allowlisted environment (FMBUILD_OUT/TMPDIR/HOME are set by the executor)
    ro_files: list[Path] = field(default_factory=list)  # extra files bound read-only (declared model files)
    devices: list[str] = field(default_factory=list)  # device nodes, e.g. /dev/nvidia0


@dataclass(slots=True)
class ExecResult:
    returncode: int | None  # None when killed for the timeout
    timed_out: bool
    duration_s: float
    log: bytes  # captured stdout+stderr, capped
    log_total_bytes: int
    log_truncated: bool
    killed_leftovers: int = 0  # processes still alive after the main one ended
    peak_processes: int | None = None
    oom_killed: bool = False  # the memory cgroup killed a process of the run for going over
    output_bytes: int = 0  # disk used by the run's files when it ended (or when it was stopped)
    over_output: bool = False  # stopped, or ended, over `max_output_mb`

    @property
    def signal_name(self) -> str | None:
        code = self.returncode
        if code is None:
            return None
        if code < 0:
            return _signame(-code)
        if code > 128 and code - 128 < 65:  # bubblewrap reports a signal death as 128+N
            return _signame(code - 128)
        return None


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Executor(Protocol):
    name: str

    def describe(self, limits: Limits, gpu: bool = False) -> str: ...

    def lacks(self) -> list[str]: ...

    def run(self, launch: Launch, limits: Limits) -> ExecResult: ...


def _base_env(launch: Launch, out: str, tmp: str) -> dict[str, str]:
    env = dict(launch.env)
    env.update(
        FMBUILD_OUT=out,
        TMPDIR=tmp,
        HOME=tmp,
        MPLCONFIGDIR=f"{tmp}/.matplotlib",
        IPYTHONDIR=f"{tmp}/.ipython",
        JUPYTER_RUNTIME_DIR=f"{tmp}/.jupyter-runtime",
        JUPYTER_DATA_DIR=f"{tmp}/.jupyter",
        XDG_CACHE_HOME=f"{tmp}/.cache",
    )
    return env


def _memory_limit_text(limits: Limits, gpu: bool) -> str:
    if memory_cgroups_available():
        if gpu:
            return f"memory {limits.memory_mb} MB for the whole run (memory cgroup; CUDA rules out an address-space limit)"
        return f"memory {limits.memory_mb} MB for the whole run (memory cgroup) and per process (address space)"
    if not gpu:
        return f"memory {limits.memory_mb} MB per process only (address space; no writable memory cgroup)"
    return "no memory limit on this GPU run (no writable memory cgroup; CUDA rules out an address-space limit)"


def _disk_limit_text(limits: Limits) -> str:
    return f"file size {limits.max_file_mb} MB, all files of the run {limits.max_output_mb} MB"


@lru_cache(maxsize=1)
def memory_cgroups_available() -> bool:
    probe = MemoryCgroup.create(64)
    if probe is None:
        return False
    probe.remove()
    return True


@dataclass
class _Confinement:
    """The cgroups one run lives in (each None when the host does not let us create it)."""

    pids: PidsCgroup | None
    memory: MemoryCgroup | None
    address_space: bool

    @classmethod
    def create(cls, limits: Limits, gpu: bool) -> "_Confinement":
        return cls(PidsCgroup.create(limits.max_processes), MemoryCgroup.create(limits.memory_mb),
                   address_space=not gpu)

    def remove(self) -> None:
        if self.pids is not None:
            self.pids.remove()
        if self.memory is not None:
            self.memory.remove()


def _process_limit_text(cgroup_ok: bool, limits: Limits) -> str:
    if cgroup_ok:
        return f"pids cgroup ({limits.max_processes} processes)"
    if nproc_enforced():
        return f"RLIMIT_NPROC ({limits.max_processes})"
    return "no process limit (no writable pids cgroup; RLIMIT_NPROC does not bind root)"


@lru_cache(maxsize=1)
def cgroups_available() -> bool:
    probe = PidsCgroup.create(8)
    if probe is None:
        return False
    probe.remove()
    return True


class OutputWatch(threading.Thread):
    """Polls the disk space a run's folders use and stops the run when they go over the limit.

    Per-file size is a hard limit (RLIMIT_FSIZE); this bound on the sum is checked every
    `interval_s`, so a run may pass it by what it writes in one interval before it is killed, and
    the runner checks the total again when the run has ended."""

    def __init__(self, folders: list[Path], limit_bytes: int, on_over, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True, name="fmbuild-output-watch")
        self.folders = folders
        self.limit = limit_bytes
        self.on_over = on_over
        self.interval = interval_s
        self.stop = threading.Event()
        self.over = False
        self.used = 0

    def measure(self) -> int:
        self.used = sum(tree_bytes(folder) for folder in self.folders)
        return self.used

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            if self.measure() > self.limit:
                self.over = True
                self.on_over()
                return


def _execute(argv: list[str], cwd: str, env: dict[str, str], limits: Limits, confinement: _Confinement,
             watched: list[Path] | None = None) -> ExecResult:
    """Start, capture, wait with a timeout, and kill the whole tree: shared by both executors."""
    cgroup = confinement.pids
    log = CappedLog(limits.max_log_bytes)
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            close_fds=True,
            preexec_fn=child_setup(limits, cgroup, confinement.memory, confinement.address_space),  # noqa: PLW1509
        )
    except (OSError, subprocess.SubprocessError) as exc:  # SubprocessError: the child set-up failed
        os.close(read_fd)
        os.close(write_fd)
        msg = f"fmbuild: could not start {argv[0]}: {exc}\n".encode()
        return ExecResult(127, False, 0.0, msg, len(msg), False)
    os.close(write_fd)
    reader = PipeReader(read_fd, log)
    reader.start()
    watch = OutputWatch(watched or [], limits.max_output_mb * MB, lambda: _kill_tree(proc, cgroup))
    watch.start()
    timed_out = False
    try:
        proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_tree(proc, cgroup)
        proc.wait()
    watch.stop.set()
    watch.join()
    duration = time.perf_counter() - start
    # Anything the module left running (a daemon, a sleeping child) dies with the run.
    leftovers = len(cgroup.pids()) if cgroup is not None else 0
    _kill_tree(proc, cgroup)
    reader.join(timeout=5)
    if reader.is_alive():  # a process outside our reach still holds the pipe open
        log.feed(b"\n[fmbuild: output still open after the run ended; stopped reading]\n")
    peak = cgroup.peak() if cgroup is not None else None
    used = watch.used if watch.over else watch.measure()
    return ExecResult(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=duration,
        log=log.content(),
        log_total_bytes=log.total,
        log_truncated=log.truncated,
        killed_leftovers=leftovers,
        peak_processes=peak,
        oom_killed=confinement.memory.oom_killed() if confinement.memory is not None else False,
        output_bytes=used,
        over_output=watch.over or used > limits.max_output_mb * MB,
    )


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: PidsCgroup | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.kill_all()


class SubprocessExecutor:
    """The weaker fallback: a child process with a clean environment and limits, nothing more."""

    name = "subprocess"

    def lacks(self) -> list[str]:
        lacking = ["read-only repository", "network isolation", "hidden home folder and secrets on disk"]
        if not cgroups_available():
            if not nproc_enforced():
                lacking.append("process limit")
            lacking.append("reach over processes that leave the session (setsid daemons)")
        return lacking

    def describe(self, limits: Limits, gpu: bool = False) -> str:
        return (
            f"subprocess (weaker: no {', no '.join(self.lacks())}); clean environment, "
            f"{_process_limit_text(cgroups_available(), limits)}, {_memory_limit_text(limits, gpu)}, "
            f"{_disk_limit_text(limits)}, whole process tree killed at the end"
        )

    def run(self, launch: Launch, limits: Limits) -> ExecResult:
        env = _base_env(launch, str(launch.out_dir), str(launch.tmp_dir))
        confinement = _Confinement.create(limits, gpu=bool(launch.devices))
        try:
            return _execute(launch.argv, str(launch.cwd), env, limits, confinement,
                            watched=[launch.out_dir, launch.tmp_dir])
        finally:
            confinement.remove()


@lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def bwrap_version() -> str:
    exe = bwrap_path()
    if exe is None:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().replace("bubblewrap ", "")


@lru_cache(maxsize=1)
def bwrap_usable() -> tuple[bool, str]:
    """Whether bubblewrap can create the namespaces here (containers often forbid it)."""
    exe = bwrap_path()
    if exe is None:
        return False, "bubblewrap (bwrap) is not installed"
    argv = [exe, "--ro-bind", "/", "/", "--unshare-user", "--unshare-pid", "--unshare-net",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--proc", "/proc", "--die-with-parent", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap does not start: {exc}"
    if done.returncode != 0:
        return False, f"bubblewrap cannot create namespaces here: {done.stderr.strip()[:200]}"
    return True, ""


def _interpreter_paths(project_root: Path) -> list[Path]:
    """Folders the interpreter needs: its prefixes and every import path outside the repository."""
    candidates = [Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix), Path(sys.executable).parent]
    candidates += [Path(p) for p in sys.path if p]
    resolved: list[Path] = []
    for path in candidates:
        for variant in {path, path.resolve()}:
            if variant.exists() and variant.is_dir() and variant not in resolved:
                resolved.append(variant)
    # Drop folders inside the repository (bound anyway) or inside another kept folder.
    kept: list[Path] = []
    for path in sorted(resolved, key=lambda p: len(p.parts)):
        if path == Path("/") or path.is_relative_to(project_root):
            continue
        if any(path.is_relative_to(k) for k in kept):
            continue
        if any(path.is_relative_to(s) for s in map(Path, SYSTEM_DIRS)):
            continue
        kept.append(path)
    return kept


class BubblewrapExecutor:
    name = "bubblewrap"

    def lacks(self) -> list[str]:
        return [] if cgroups_available() or nproc_enforced() else ["process limit"]

    def describe(self, limits: Limits, gpu: bool = False) -> str:
        return (
            f"bubblewrap {bwrap_version()}: read-only repository (.git hidden), private /tmp and output, "
            f"no network but loopback, pid/ipc/uts/user namespaces (uid {SANDBOX_UID}), clean environment, "
            f"{_process_limit_text(cgroups_available(), limits)}, {_memory_limit_text(limits, gpu)}, "
            f"{_disk_limit_text(limits)}, dies with the runner"
        )

    def arguments(self, launch: Launch) -> list[str]:
        root = launch.project_root.resolve()
        args: list[str] = [
            "--die-with-parent", "--new-session",
            "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
            "--unshare-cgroup-try",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "fmbuild-sandbox",
            "--dev", "/dev", "--proc", "/proc",
            # The private /tmp comes first so that a repository or interpreter under /tmp stays visible.
            "--bind", str(launch.tmp_dir), SANDBOX_TMP,
        ]
        for folder in SYSTEM_DIRS:
            args += ["--ro-bind-try", folder, folder]
        for name in SYSTEM_LINKS_OR_DIRS:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                args += ["--ro-bind", name, name]
        for entry in ETC_ALLOW:
            args += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
        args += ["--ro-bind-try", "/sys", "/sys"]
        for path in _interpreter_paths(root):
            args += ["--ro-bind", str(path), str(path)]
        args += ["--ro-bind", str(root), str(root)]
        git = root / ".git"
        if git.is_dir():
            args += ["--tmpfs", str(git)]
        elif git.exists():
            args += ["--ro-bind", "/dev/null", str(git)]
        if (root / ".fmbuild").is_dir():
            args += ["--tmpfs", str(root / ".fmbuild")]
        for file in launch.ro_files:
            real = file.resolve()
            args += ["--ro-bind", str(real), str(real)]
            if file.absolute() != real:
                args += ["--ro-bind", str(real), str(file.absolute())]
        for node in launch.devices:
            args += ["--dev-bind-try", node, node]
        args += [
            "--bind", str(launch.out_dir), SANDBOX_OUT,
            "--remount-ro", "/",
            "--chdir", str(launch.cwd.resolve()),
        ]
        return args

    def run(self, launch: Launch, limits: Limits) -> ExecResult:
        exe = bwrap_path()
        assert exe is not None, "BubblewrapExecutor chosen without bwrap"
        env = _base_env(launch, SANDBOX_OUT, SANDBOX_TMP)
        argv = [exe, *self.arguments(launch), "--", *launch.argv]
        confinement = _Confinement.create(limits, gpu=bool(launch.devices))
        try:
            return _execute(argv, str(launch.cwd), env, limits, confinement,
                            watched=[launch.out_dir, launch.tmp_dir])
        finally:
            confinement.remove()


class IsolationError(RuntimeError):
    pass


def choose_executor(kind: str = "auto") -> Executor:
    """`auto`: bubblewrap when it works here, else the subprocess fallback."""
    if kind == "subprocess":
        return SubprocessExecutor()
    usable, why = bwrap_usable()
    if usable:
        return BubblewrapExecutor()
    if kind == "bubblewrap":
        raise IsolationError(f"--isolation bubblewrap: {why}")
    return SubprocessExecutor()


def fallback_reason() -> str:
    """Why the fallback is in use (empty when bubblewrap works)."""
    usable, why = bwrap_usable()
    return "" if usable else why
