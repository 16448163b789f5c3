"""Agent file and shell tools under five execution configurations, and the OS mechanisms they use.

Configurations:
- `none`: no check at all (shows every attempt is a real escape when nothing stands in the way).
- `naive_prefix`: a policy layer checks `os.path.join(workspace, arg).startswith(workspace)`.
- `resolve_fence`: a policy layer resolves each path argument (symlinks, `..`) and refuses anything
  outside the workspace, like agent-tool-misuse's path sandbox; the tool then opens the path.
- `openat2_beneath`: the file tools open with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
  relative to a workspace descriptor; the shell tool keeps the resolve fence on its arguments.
- `landlock`: every tool call runs in a forked child that has restricted itself with Linux
  Landlock to the workspace (read-write) and the system folders (read and execute only).

The tools decode what the model sends (percent-encoding, NFKC unicode) after the policy layer has
seen the raw argument, as many tool wrappers do.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import unquote

CONFIGS = ("none", "naive_prefix", "resolve_fence", "openat2_beneath", "landlock")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# x86_64 and aarch64 share these numbers (the generic syscall table since 5.x).
SYS_OPENAT2, SYS_LL_CREATE, SYS_LL_ADD, SYS_LL_RESTRICT = 437, 444, 445, 446
RESOLVE_NO_MAGICLINKS, RESOLVE_BENEATH = 0x02, 0x08
PR_SET_NO_NEW_PRIVS = 38

LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_TRUNCATE, LL_IOCTL_DEV = 1 << 14, 1 << 15
FILE_RIGHTS_V1 = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE


class ToolError(Exception):
    """A tool call refused or failed; the message is what the agent sees."""


class PolicyRefusal(ToolError):
    pass


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> tuple[int, str]:
    """The kernel's Landlock ABI version (0 when unavailable) and why."""
    r = _libc.syscall(SYS_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if r < 0:
        err = ctypes.get_errno()
        return 0, f"landlock_create_ruleset: {os.strerror(err)} (errno {err}; kernel {os.uname().release})"
    return int(r), "available"


def openat2_available(probe_dir: Path) -> tuple[bool, str]:
    fd = os.open(probe_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        how = _OpenHow(os.O_RDONLY | os.O_DIRECTORY, 0, RESOLVE_BENEATH)
        r = _libc.syscall(SYS_OPENAT2, fd, b".", ctypes.byref(how), ctypes.sizeof(how))
        if r < 0:
            err = ctypes.get_errno()
            return False, f"openat2: {os.strerror(err)} (errno {err})"
        os.close(r)
        return True, "available"
    finally:
        os.close(fd)


def landlock_restrict(read_write: list[Path], read_exec: list[Path], rw_files: list[Path], abi: int) -> None:
    """Restrict this process (and every child) to the given folders; raises OSError on failure."""
    dir_rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    file_rights = FILE_RIGHTS_V1
    if abi >= 2:
        dir_rights |= 1 << 13  # REFER: links and renames across folders are handled (denied outside)
    if abi >= 3:
        dir_rights |= LL_TRUNCATE
        file_rights |= LL_TRUNCATE
    handled = dir_rights
    attr = _RulesetAttr(handled)
    fd = _libc.syscall(SYS_LL_CREATE, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")

    def add(path: Path, rights: int) -> None:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            rule = _PathBeneath(rights, pfd)
            if _libc.syscall(SYS_LL_ADD, ctypes.c_int(fd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        finally:
            os.close(pfd)

    try:
        for p in read_write:
            add(p, dir_rights)
        for p in read_exec:
            add(p, LL_EXECUTE | LL_READ_FILE | LL_READ_DIR)
        for p in rw_files:
            add(p, file_rights)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS)")
        if _libc.syscall(SYS_LL_RESTRICT, ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(fd)


def system_read_exec() -> list[Path]:
    """What a shell command needs to run: system folders and this Python's installation."""
    paths = {Path(p) for p in ("/usr", "/bin", "/lib", "/lib64", "/etc", "/sbin")}
    for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        paths.add(Path(p).resolve())
    return sorted(paths)


def decode(arg: str) -> str:
    """What the tool wrapper does to a path the model sent: percent-decoding, then NFKC."""
    return unicodedata.normalize("NFKC", unquote(arg))


class ToolBox:
    """read_file, write_file, list_dir and shell for one workspace, under one configuration."""

    def __init__(self, workspace: Path, config: str, landlock_abi_version: int = 0) -> None:
        if config not in CONFIGS:
            raise ValueError(f"unknown configuration {config!r}; expected one of {', '.join(CONFIGS)}")
        self.ws = workspace.resolve()
        self.config = config
        self.abi = landlock_abi_version
        if config == "landlock" and self.abi < 1:
            raise ValueError("landlock configuration needs a kernel with Landlock (ABI >= 1)")

    # -- policy layer: sees the raw arguments, before the tool runs -------------------------
    def _check_path(self, arg: str) -> None:
        if self.config == "naive_prefix":
            if not os.path.join(str(self.ws), arg).startswith(str(self.ws)):
                raise PolicyRefusal(f"path outside the workspace: {arg}")
        elif self.config in ("resolve_fence", "openat2_beneath"):
            if not (self.ws / arg).resolve().is_relative_to(self.ws):
                raise PolicyRefusal(f"path escapes the workspace: {arg}")

    def _check(self, tool: str, args: dict[str, Any]) -> None:
        if self.config in ("none", "landlock"):
            return
        if tool == "shell":
            words = shlex.split(args["command"])
            for w in words[1:]:  # the command name itself is looked up on PATH
                if not w.startswith("-") and w not in ("&&", "|", ";", ">"):
                    self._check_path(w)
        elif self.config != "openat2_beneath":  # openat2_beneath leaves file paths to the kernel
            self._check_path(args.get("path", "."))

    # -- the tools ---------------------------------------------------------------------------
    def call(self, tool: str, args: dict[str, Any]) -> str:
        if tool not in ("read_file", "write_file", "list_dir", "shell"):
            raise ToolError(f"unknown tool {tool!r}")
        self._check(tool, args)
        if self.config == "landlock":
            return self._call_landlocked(tool, args)
        return self._run(tool, args)

    def _run(self, tool: str, args: dict[str, Any]) -> str:
        try:
            if tool == "shell":
                p = subprocess.run(["sh", "-c", args["command"]], cwd=self.ws, capture_output=True, text=True,
                                   timeout=20, stdin=subprocess.DEVNULL)
                if p.returncode != 0:
                    raise ToolError(f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[:200]}")
                return p.stdout
            path = decode(args.get("path", "."))
            if tool == "read_file":
                return self._open(path, os.O_RDONLY).decode("utf-8", "replace")
            if tool == "write_file":
                self._write(path, args["text"])
                return f"wrote {len(args['text'])} bytes to {args['path']}"
            if self.config == "openat2_beneath":
                fd = self._openat2(path, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    return "\n".join(sorted(os.listdir(fd)))
                finally:
                    os.close(fd)
            return "\n".join(sorted(os.listdir(self.ws / path)))
        except ToolError:
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            raise ToolError(f"{tool} failed: {exc.__class__.__name__}: {exc}") from None

    def _open(self, path: str, flags: int) -> bytes:
        if self.config == "openat2_beneath":
            fd = self._openat2(path, flags)
        else:
            fd = os.open(self.ws / path, flags)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def _write(self, path: str, text: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        if self.config == "openat2_beneath":
            parent = os.path.dirname(path)
            if parent:
                self._makedirs_beneath(parent)
            fd = self._openat2(path, flags)
        else:
            target = self.ws / path
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)

    def _openat2(self, path: str, flags: int) -> int:
        dfd = os.open(self.ws, os.O_PATH | os.O_DIRECTORY)
        try:
            how = _OpenHow(flags | os.O_CLOEXEC, 0o644 if flags & os.O_CREAT else 0,
                           RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
            r = _libc.syscall(SYS_OPENAT2, dfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
            if r < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path)
            return int(r)
        finally:
            os.close(dfd)

    def _makedirs_beneath(self, parent: str) -> None:
        current = ""
        for part in Path(parent).parts:
            current = os.path.join(current, part)
            try:
                os.close(self._openat2(current, os.O_RDONLY | os.O_DIRECTORY))
            except FileNotFoundError:
                if ".." in part or part.startswith("/"):
                    raise
                os.mkdir(self.ws / current)  # one new name under a folder openat2 just vetted

    def _call_landlocked(self, tool: str, args: dict[str, Any]) -> str:
        """Fork; the child restricts itself with Landlock, runs the tool, and sends back the result."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            try:
                landlock_restrict([self.ws], system_read_exec(), [Path("/dev/null")], self.abi)
                reply = {"ok": True, "out": self._run(tool, args)}
            except ToolError as exc:
                reply = {"ok": False, "err": str(exc)}
            except BaseException as exc:  # noqa: BLE001 - the child must always answer
                reply = {"ok": False, "err": f"sandbox: {exc.__class__.__name__}: {exc}"}
            data = json.dumps(reply).encode("utf-8")
            view = memoryview(data)
            while view:
                n = os.write(w, view)
                view = view[n:]
            os._exit(0)
        os.close(w)
        chunks = []
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        reply = json.loads(b"".join(chunks).decode("utf-8"))
        if not reply["ok"]:
            raise ToolError(reply["err"])
        return reply["out"]
