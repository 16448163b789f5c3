"""GPU detection and device choice, with the GPU path mocked (the test machine has none)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fmbuild.evidence.devices import DeviceError, GpuInfo, detect_gpu, host_device, module_device
from fmbuild.evidence.isolation import BubblewrapExecutor, Launch
from test_evidence_support import make_project, run_modules


def fake_smi(folder: Path, output: str, code: int = 0) -> str:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_no_gpu(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc").mkdir()
    info = detect_gpu(tmp_path / "dev", tmp_path / "proc", smi=None)
    assert not info.present and "no /dev/nvidia" in info.evidence


def test_device_nodes_mean_a_gpu(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        (dev / name).touch()
    info = detect_gpu(dev, tmp_path / "proc", smi=None)
    assert info.present
    assert str(dev / "nvidia0") in info.device_nodes and str(dev / "nvidiactl") in info.device_nodes


def test_control_node_alone_is_not_a_gpu(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "nvidiactl").touch()
    assert not detect_gpu(dev, tmp_path / "proc", smi=None).present


def test_proc_driver_entries_mean_a_gpu(tmp_path: Path) -> None:
    gpus = tmp_path / "proc" / "driver" / "nvidia" / "gpus" / "0000:01:00.0"
    gpus.mkdir(parents=True)
    info = detect_gpu(tmp_path / "dev", tmp_path / "proc", smi=None)
    assert info.present and "/proc/driver/nvidia" in info.evidence.replace(str(tmp_path / "proc"), "/proc")


def test_nvidia_smi_names_the_gpu(tmp_path: Path) -> None:
    smi = fake_smi(tmp_path, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-5678)")
    info = detect_gpu(tmp_path / "dev", tmp_path / "proc", smi=smi)
    assert info.present and info.names == ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3")
    assert info.name == "NVIDIA H100 80GB HBM3"


def test_failing_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    smi = fake_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", code=9)
    assert not detect_gpu(tmp_path / "dev", tmp_path / "proc", smi=smi).present


def test_detection_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys; from fmbuild.evidence.devices import detect_gpu; detect_gpu(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


GPU = GpuInfo(True, ("NVIDIA Test GPU",), "mocked", ("/dev/nvidia0", "/dev/nvidiactl"))
CPU_ONLY = GpuInfo(False, (), "mocked: none")


def test_host_device_choices() -> None:
    assert host_device("auto", GPU) == "cuda"
    assert host_device("auto", CPU_ONLY) == "cpu"
    assert host_device("cpu", GPU) == "cpu"
    assert host_device("cuda", GPU) == "cuda"
    with pytest.raises(DeviceError, match="no GPU"):
        host_device("cuda", CPU_ONLY)
    with pytest.raises(DeviceError):
        host_device("tpu", GPU)


@pytest.mark.parametrize(
    ("declared", "host", "choice", "device", "why"),
    [
        ("cpu", "cuda", "auto", "cpu", ""),
        ("any", "cuda", "auto", "cuda", ""),
        ("any", "cpu", "auto", "cpu", ""),
        (None, "cpu", "auto", "cpu", ""),
        ("gpu", "cuda", "auto", "cuda", ""),
        ("gpu", "cpu", "auto", None, "none detected"),
        ("gpu", "cpu", "cpu", None, "--device cpu"),
    ],
)
def test_module_device(declared: str | None, host: str, choice: str, device: str | None, why: str) -> None:
    got, reason = module_device(declared, host, choice)
    assert got == device and why in reason


def test_gpu_device_nodes_are_bound_into_the_sandbox(tmp_path: Path) -> None:
    launch = Launch(argv=["true"], cwd=tmp_path, project_root=tmp_path, out_dir=tmp_path, tmp_dir=tmp_path,
                    env={}, devices=list(GPU.device_nodes))
    args = BubblewrapExecutor().arguments(launch)
    for node in GPU.device_nodes:
        i = args.index(node)
        assert args[i - 1] == "--dev-bind-try" and args[i + 1] == node


def test_gpu_module_runs_on_cuda_and_gpu_runs_do_not_overlap(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    # A second GPU module, so that two GPU runs compete for the one GPU.
    import shutil

    shutil.copytree(project / "evidence" / "ev-gpu", project / "evidence" / "ev-gpu-2")
    got = run_modules(project, "ev-gpu", "ev-gpu-2", "ev-pass", parallel=3, gpu=GPU, host="cuda")
    a, b = got["ev-gpu"], got["ev-gpu-2"]
    assert a.status == b.status == "passed", a.reason + a.log_tail
    assert a.metrics["device"] == b.metrics["device"] == "cuda"
    assert a.device == "cuda" and a.environment["gpu"] == "NVIDIA Test GPU"
    first, second = sorted((a.metrics, b.metrics), key=lambda m: m["start"])
    assert second["start"] >= first["end"], "two GPU runs overlapped"
    # the CPU-declared note of ev-pass keeps it on the CPU even on a GPU host
    assert got["ev-pass"].device == "cpu"


def test_gpu_runs_may_overlap_when_asked(tmp_path: Path) -> None:
    import shutil

    from fmbuild.config import load_config
    from fmbuild.evidence.selection import select
    from fmbuild.vault.load import load_vault
    from test_evidence_support import make_runner

    project = make_project(tmp_path)
    shutil.copytree(project / "evidence" / "ev-gpu", project / "evidence" / "ev-gpu-2")
    for name in ("ev-gpu", "ev-gpu-2"):
        (project / "evidence" / name / "module.toml").write_text('device = "gpu"\n[params]\nsleep = 2.0\n')
    config = load_config(project / "fmbuild.toml")
    jobs = select(["ev-gpu", "ev-gpu-2"], load_vault(config.vault_path, config, use_cache=False), config, cwd=project)
    results = make_runner(project, gpu=GPU, host="cuda").run_all(jobs, parallel=2, gpu_parallel=2)
    first, second = sorted((r.metrics for r in results), key=lambda m: m["start"])
    assert second["start"] < first["end"], "asked for overlapping GPU runs, got serial ones"


def test_gpu_only_module_is_skipped_on_a_cpu_host(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    r = run_modules(project, "ev-gpu", gpu=CPU_ONLY, host="cpu")["ev-gpu"]
    assert r.status == "skipped" and "needs a GPU" in r.reason


def test_cli_refuses_device_cuda_without_a_gpu(tmp_path: Path) -> None:
    from test_evidence_support import fmbuild

    if detect_gpu().present:
        pytest.skip("this host has a GPU")
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", "ev-pass", "--device", "cuda")
    assert done.returncode == 2
    assert "--device cuda" in done.stderr and "Traceback" not in done.stderr
    assert os.path.isdir(project)
