"""Every evidence module of the repository, run at smoke scale through the real runner.

Modules are discovered when the tests are collected, so a new `evidence/<module>/` is tested
without touching this file. A smoke run must exit 0, write metrics.json, and produce every metric
that any note claims (values are not judged at smoke scale). A module skipped for a reason the
host cannot help (no GPU, a missing optional package or model file) is a pytest skip with that
reason. Runs use a fresh state folder: nothing comes from the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fmbuild.config import find_config, load_config
from fmbuild.evidence.devices import detect_gpu, host_device
from fmbuild.evidence.isolation import choose_executor
from fmbuild.evidence.limits import MB, Limits
from fmbuild.evidence.runner import Runner, RunnerOptions
from fmbuild.evidence.selection import module_names, select
from fmbuild.vault.load import load_vault

REPO = Path(__file__).resolve().parent.parent
CONFIG_PATH = find_config(REPO)
CONFIG = load_config(CONFIG_PATH) if CONFIG_PATH is not None and CONFIG_PATH.parent == REPO else None
MODULES = module_names(CONFIG) if CONFIG is not None else []


@pytest.fixture(scope="session")
def vault():
    assert CONFIG is not None
    return load_vault(CONFIG.vault_path, CONFIG, use_cache=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES or [pytest.param("none", marks=pytest.mark.skip(reason="no modules yet"))])
def test_module_smoke(name: str, vault, tmp_path: Path) -> None:
    assert CONFIG is not None
    [job] = select([name], vault, CONFIG, cwd=REPO)
    ev = CONFIG.evidence
    gpu = detect_gpu()
    runner = Runner(RunnerOptions(
        project_root=CONFIG.project_root, state_dir=tmp_path / "state", executor=choose_executor("auto"),
        gpu=gpu, host_device=host_device("auto", gpu), device_choice="auto",
        limits=Limits(0, ev.memory_mb, ev.max_processes, ev.max_file_mb, ev.max_log_mb * MB, ev.max_output_mb),
        default_timeout=ev.default_timeout, seed=ev.seed, scale="smoke", use_cache=False,
        pass_env=ev.pass_env, max_metrics_bytes=ev.max_metrics_mb * MB,
    ))
    result = runner.run(job)
    if result.status == "skipped":
        pytest.skip(f"{name}: {result.reason}")
    assert result.status == "passed", f"{name}: {result.status}: {result.reason}\n{result.log_tail}"
    assert result.metrics, f"{name} wrote an empty metrics.json"
    assert all(c.ok for c in result.claims)
