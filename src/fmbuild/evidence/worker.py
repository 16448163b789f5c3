"""One module run on a remote worker, exactly as the local runner runs it.

`run_shipped` unpacks what the caller shipped (the module and its declared inputs, the declared
files), chooses the worker's isolation (bubblewrap where it works, else the named subprocess
fallback, as `--isolation` asks), runs the module under the same limits and timeout, and returns
the log, the outputs and what ran where. The caller judges, caches and records: a verdict never
depends on where it ran. Nothing here imports Ray (`ray_dispatch` wraps it in a task).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import fmbuild
from fmbuild.evidence.contract import read_module
from fmbuild.evidence.devices import detect_gpu
from fmbuild.evidence.fingerprint import environment
from fmbuild.evidence.isolation import IsolationError, choose_executor
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.parcel import ParcelError, extract, local_launch, pack_outputs, write_read_only
from fmbuild.evidence.records import secret_values


def fmbuild_library() -> Path:
    """The folder holding the `fmbuild` package this worker runs (the caller's, shipped by Ray)."""
    return Path(fmbuild.__file__).resolve().parent.parent


def run_shipped(request: dict[str, Any], module_tar: bytes, files: dict[str, bytes]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fmbuild-worker-"))
    try:
        return _run(request, module_tar, files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(request: dict[str, Any], module_tar: bytes, files: dict[str, bytes], work: Path) -> dict[str, Any]:
    root, files_dir, out_dir, tmp_dir = work / "project", work / "files", work / "out", work / "tmp"
    for folder in (root, out_dir, tmp_dir):
        folder.mkdir()
    try:
        extract(module_tar, root)
    except ParcelError as exc:
        return {"refused": f"the module {exc}"}
    portable = request["launch"]
    for variable, name in portable.get("files", {}).items():
        write_read_only(files_dir / variable / name, files[variable])
    try:
        executor = choose_executor(request["isolation"])
    except IsolationError as exc:
        return {"refused": f"the worker cannot isolate the run as asked: {exc}"}
    cuda = request["device"] == "cuda"
    gpu = detect_gpu() if cuda else None
    venv = sys.prefix if sys.prefix != sys.base_prefix else None
    launch = local_launch(portable, python=sys.executable, venv=venv, root=root, files_dir=files_dir,
                          out_dir=out_dir, tmp_dir=tmp_dir, devices=list(gpu.device_nodes) if gpu else [])
    # The sandbox imports the fmbuild this worker runs (the caller's), not one its disk may hold.
    launch.env["PYTHONPATH"] = str(fmbuild_library())
    if cuda and "CUDA_VISIBLE_DEVICES" in os.environ:  # the GPU the cluster gave this task
        launch.env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    limits = Limits(**request["limits"])
    isolation_text = executor.describe(limits, gpu=cuda)
    done = executor.run(launch, limits)

    log = done.log
    for secret in secret_values():  # this worker's own secrets; the caller redacts its own
        log = log.replace(secret.encode(), b"[redacted]")
    outputs, problems = (b"", []) if done.over_output else pack_outputs(out_dir, limits.max_output_mb * MB)
    fields = {f.name: getattr(done, f.name) for f in dataclasses.fields(done) if f.name != "log"}
    module_dir = root / request["module_rel"]
    return {
        "exec": fields,
        "log": log,
        "outputs": outputs,
        "problems": [dataclasses.astuple(p) for p in problems],
        "isolation": executor.name,
        "isolation_text": isolation_text,
        "gpu": gpu.name if gpu is not None else "",
        "paths": {"out": str(out_dir), "tmp": str(tmp_dir), "root": str(root), "home": str(Path.home())},
        "environment": environment(read_module(module_dir)),
    }


def where() -> dict[str, str]:
    """This worker, for the caller's output."""
    return {"host": socket.gethostname()}
