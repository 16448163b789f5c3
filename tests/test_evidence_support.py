"""Shared helpers for the evidence runner's tests (no tests here): fixture projects, a runner
built the way `fmbuild verify` builds it, and the command line run as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from fmbuild.config import load_config
from fmbuild.evidence.devices import GpuInfo
from fmbuild.evidence.isolation import Executor, choose_executor
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.runner import Result, Runner, RunnerOptions
from fmbuild.evidence.selection import select
from fmbuild.vault.load import load_vault

VAULTS = Path(__file__).parent / "vaults"
HOSTILE = Path(__file__).parent / "hostile"
NO_GPU = GpuInfo(False, evidence="test: no GPU")


def make_project(tmp_path: Path, name: str = "ev-basic") -> Path:
    target = tmp_path / name
    shutil.copytree(VAULTS / name, target, ignore=shutil.ignore_patterns(".fmbuild", "record", "out", "__pycache__"))
    return target


def add_hostile(project: Path, name: str, note_claims: dict[str, str] | None = None, timeout: int | None = None,
                module_toml: str = "") -> None:
    """Copy a hostile module into the project's evidence folder, with a note citing it."""
    shutil.copytree(HOSTILE / name, project / "evidence" / name)
    if module_toml:
        (project / "evidence" / name / "module.toml").write_text(module_toml)
    claims = "".join(f"    {k}: \"{v}\"\n" for k, v in (note_claims or {}).items())
    timeout_line = f"  timeout: {timeout}\n" if timeout else ""
    (project / "vault" / "techniques" / f"{name}.md").write_text(
        f"---\ntitle: {name}\nid: {name}\ntags: [type/technique]\nmaturity: draft\ncreated: 2026-11-21\n"
        f"updated: 2026-11-21\nevidence:\n  module: evidence/{name}\n{timeout_line}"
        + (f"  claims:\n{claims}" if claims else "") + "---\n\n# hostile\n"
    )


def make_runner(project: Path, *, executor: Executor | None = None, gpu: GpuInfo = NO_GPU, host: str = "cpu",
                choice: str = "auto", **options: Any) -> Runner:
    config = load_config(project / "fmbuild.toml")
    ev = config.evidence
    limits = Limits(0, ev.memory_mb, ev.max_processes, ev.max_file_mb, ev.max_log_mb * MB, ev.max_output_mb)
    options.setdefault("pass_env", ev.pass_env)
    options.setdefault("max_metrics_bytes", ev.max_metrics_mb * MB)
    return Runner(RunnerOptions(
        project_root=config.project_root, state_dir=config.project_root / ".fmbuild" / "evidence",
        executor=executor or choose_executor("auto"), gpu=gpu, host_device=host, device_choice=choice,
        limits=limits, default_timeout=ev.default_timeout, seed=ev.seed, **options,
    ))


def run_modules(project: Path, *targets: str, parallel: int = 1, **options: Any) -> dict[str, Result]:
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    jobs = select(list(targets), vault, config, cwd=project)
    runner = make_runner(project, **options)
    return {r.module: r for r in runner.run_all(jobs, parallel=parallel)}


def fmbuild(project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`fmbuild ARGS` as a separate process in the project folder."""
    full_env = dict(os.environ)
    full_env.pop("FMBUILD_TEST_MODEL", None)  # a test that wants the model file passes it
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "fmbuild", *args], cwd=project, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
