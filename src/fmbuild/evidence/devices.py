"""Which device a run gets, detected without importing torch into the runner.

CUDA is present when the driver shows itself: `/dev/nvidia<N>` device nodes, the driver's
`/proc/driver/nvidia/gpus/` entries, or `nvidia-smi -L` listing a GPU. The probe functions take
their roots as arguments so that tests can point them at a fake tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, slots=True)
class GpuInfo:
    present: bool
    names: tuple[str, ...] = ()  # e.g. ('NVIDIA H100 80GB HBM3',) when nvidia-smi says so
    evidence: str = ""  # how it was detected, for the record and the output
    device_nodes: tuple[str, ...] = ()  # /dev/nvidia* paths to bind into the sandbox

    @property
    def name(self) -> str:
        return self.names[0] if self.names else ("NVIDIA GPU" if self.present else "")


def detect_gpu(dev: Path = Path("/dev"), proc: Path = Path("/proc"), smi: str | None = "nvidia-smi") -> GpuInfo:
    nodes = tuple(sorted(str(p) for p in dev.glob("nvidia*"))) if dev.is_dir() else ()
    numbered = [n for n in nodes if re.search(r"/nvidia\d+$", n)]
    gpus_dir = proc / "driver" / "nvidia" / "gpus"
    proc_gpus = sorted(p.name for p in gpus_dir.iterdir()) if gpus_dir.is_dir() else []
    names = _smi_names(smi)
    if numbered or proc_gpus or names:
        how = []
        if numbered:
            how.append(f"{len(numbered)} /dev/nvidia device(s)")
        if proc_gpus:
            how.append(f"{len(proc_gpus)} GPU(s) in {gpus_dir}")
        if names:
            how.append("nvidia-smi")
        return GpuInfo(True, tuple(names), ", ".join(how), nodes)
    return GpuInfo(False, (), "no /dev/nvidia*, no /proc/driver/nvidia, no nvidia-smi GPU")


def _smi_names(smi: str | None) -> list[str]:
    if not smi:
        return []
    exe = shutil.which(smi)
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"
    return [m.group(1).strip() for m in re.finditer(r"^GPU \d+: (.+?)(?: \(UUID:.*)?$", done.stdout, re.M)]


class DeviceError(ValueError):
    """`--device cuda` on a host without a GPU, or an unknown choice."""


def host_device(choice: str, gpu: GpuInfo) -> str:
    """The device class runs may use on this host: 'cpu' or 'cuda'."""
    if choice not in CHOICES:
        raise DeviceError(f"--device must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "cuda" and not gpu.present:
        raise DeviceError(f"--device cuda, but no GPU is visible ({gpu.evidence})")
    if choice == "auto":
        return "cuda" if gpu.present else "cpu"
    return choice


def module_device(declared: str | None, host: str, choice: str) -> tuple[str | None, str]:
    """(device for the run, or None to skip, and why). `declared` is cpu | gpu | any."""
    declared = declared or "any"
    if declared == "cpu":
        return "cpu", ""
    if declared == "gpu":
        if host == "cuda":
            return "cuda", ""
        if choice == "cpu":
            return None, "needs a GPU and --device cpu was given"
        return None, "needs a GPU; none detected on this host"
    return host, ""


def cluster_device(declared: str | None, cluster_gpus: float, choice: str) -> tuple[str | None, str]:
    """`module_device` for a Ray cluster: a `gpu` module gets a GPU where the cluster has one; an
    `any` module gets one only with `--device cuda`."""
    declared = declared or "any"
    if declared == "cpu":
        return "cpu", ""
    if declared == "gpu":
        if choice == "cpu":
            return None, "needs a GPU and --device cpu was given"
        if cluster_gpus > 0:
            return "cuda", ""
        return None, "needs a GPU; the Ray cluster has none"
    return ("cuda" if choice == "cuda" and cluster_gpus > 0 else "cpu"), ""
