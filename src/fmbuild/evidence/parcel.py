"""What travels between the caller of `verify` and a remote worker, as plain bytes and dicts.

A worker runs exactly what the cache key hashed, never what its own disk holds:

- `module_archive`: the module's files and its declared inputs (the files `inputs_hash` covers),
  plus `fmbuild.toml`, as a tar with project-relative names.
- `portable_launch` / `local_launch`: the caller's `Launch` with its host paths (interpreter,
  repository, declared model files) turned into placeholders, and back on the worker.
- `pack_outputs` / `unpack_outputs`: the run's plain output files on the way back, with the
  entries that are not plain files (links, fifos) named, never copied, as a local run would.

Nothing here imports Ray: the caller and the worker both use it, and it is tested alone.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from fmbuild.evidence import safe_read
from fmbuild.evidence.contract import ModuleSpec, module_files
from fmbuild.evidence.fingerprint import expand_inputs
from fmbuild.evidence.isolation import Launch

PROJECT_FILE = "fmbuild.toml"
# Placeholders for the caller's host paths inside a shipped launch.
PYTHON, VENV_BIN, VENV, ROOT, FILES = "{python}", "{venv_bin}", "{venv}", "{root}", "{files}"


class ParcelError(ValueError):
    """A module or an output that cannot travel (a link leading out, a name that is not a path)."""


def module_archive(spec: ModuleSpec, project_root: Path) -> bytes:
    """The module folder and its declared inputs, with names relative to the project."""
    root = project_root.resolve()
    buffer = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(path: Path, name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0  # the archive's bytes depend on the content only
            if info.issym():
                tar.addfile(info)
            elif info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
        for path in module_files(spec.path):
            add(path, spec.path.resolve().relative_to(root).as_posix() + "/" + path.relative_to(spec.path).as_posix())
        for name, path in expand_inputs(spec, root):
            if path is not None:
                add(path, name)
        if (root / PROJECT_FILE).is_file():
            add(root / PROJECT_FILE, PROJECT_FILE)
    return buffer.getvalue()


def extract(archive: bytes, dest: Path) -> None:
    """Unpack an archive of ours: plain files, folders, and links that stay inside `dest`."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            raise ParcelError(f"cannot be shipped to a worker: {exc}") from None


def pack_outputs(out_dir: Path, max_bytes: int) -> tuple[bytes, list[safe_read.OutputFile]]:
    """The run's plain files as a tar, and what was not packed (and why), as `safe_read.walk` sees it."""
    buffer = io.BytesIO()
    problems: list[safe_read.OutputFile] = []
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in safe_read.walk(out_dir):
            if item.problem:
                problems.append(item)
                continue
            try:
                data = safe_read.read_bytes(out_dir, item.rel, max_bytes)
            except OSError as exc:  # changed or vanished since the walk
                problems.append(safe_read.OutputFile(item.rel, item.size, f"unreadable: {exc}"))
                continue
            info = tarfile.TarInfo(item.rel)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), problems


def unpack_outputs(archive: bytes, out_dir: Path) -> None:
    """The worker's outputs into the caller's run folder: regular files only, names inside it."""
    base = out_dir.resolve()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isreg() or name.startswith("/") or ".." in Path(name).parts or "\x00" in name:
                raise ParcelError(f"the worker sent back {name!r}, which is not a plain file inside the run folder")
            target = (base / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(base):
                raise ParcelError(f"the worker sent back {name!r}, which leads outside the run folder")
            source = tar.extractfile(member)
            assert source is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as handle:
                while chunk := source.read(1 << 20):
                    handle.write(chunk)


def portable_launch(launch: Launch, python: str, venv: str | None, declared_files: dict[str, Path]) -> dict[str, Any]:
    """The launch with the caller's host paths as placeholders (the worker fills in its own).
    `venv` is the caller's virtual environment, None when it runs outside one."""
    root = str(launch.project_root.resolve())
    files = {str(path): f"{FILES}/{variable}/{path.name}" for variable, path in declared_files.items()}
    prefixes = [(venv, VENV)] if venv else []
    prefixes.append((root, ROOT))

    def part(value: str) -> str:
        if value in files:
            return files[value]
        if value == python:
            return PYTHON
        if value == str(Path(python).parent):  # the PATH entry of the interpreter's folder, exactly
            return VENV_BIN
        for host, placeholder in prefixes:
            if value == host or value.startswith(host + "/"):
                return placeholder + value[len(host):]
        return value

    def convert(value: str) -> str:  # PATH-like lists too
        return ":".join(part(p) for p in value.split(":"))

    return {
        "argv": [convert(a) for a in launch.argv],
        "cwd": convert(str(launch.cwd.resolve())),
        "env": {k: convert(v) for k, v in launch.env.items()},
        "files": {variable: path.name for variable, path in declared_files.items()},
    }


def local_launch(portable: dict[str, Any], *, python: str, venv: str | None, root: Path, files_dir: Path,
                 out_dir: Path, tmp_dir: Path, devices: list[str]) -> Launch:
    """The shipped launch with the worker's own paths in place of the placeholders."""
    values = {PYTHON: python, VENV_BIN: str(Path(python).parent), VENV: venv or str(Path(python).parent.parent),
              ROOT: str(root), FILES: str(files_dir)}

    def fill(value: str) -> str:
        for placeholder, real in values.items():
            value = value.replace(placeholder, real)
        return value

    ro_files = [files_dir / variable / name for variable, name in portable.get("files", {}).items()]
    return Launch(
        argv=[fill(a) for a in portable["argv"]], cwd=Path(fill(portable["cwd"])), project_root=root,
        out_dir=out_dir, tmp_dir=tmp_dir, env={k: fill(v) for k, v in portable["env"].items()},
        ro_files=ro_files, devices=devices,
    )


def write_read_only(path: Path, data: bytes) -> None:
    """A shipped declared file (a model) on the worker: written once, then read-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
