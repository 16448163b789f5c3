"""The run cache: hits, misses, and invalidation when any input of a run changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import fmbuild.evidence.fingerprint as fingerprint
import fmbuild.evidence.runner as runner_module
from fmbuild.evidence.contract import read_module
from fmbuild.evidence.devices import GpuInfo
from fmbuild.evidence.fingerprint import inputs_hash, module_imports
from test_evidence_support import make_project, run_modules


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    project = make_project(tmp_path)
    first = run_modules(project, "ev-pass")["ev-pass"]
    assert first.status == "passed" and not first.cached
    return project


def again(project: Path, **options) -> runner_module.Result:
    return run_modules(project, "ev-pass", **options)["ev-pass"]


def test_second_run_is_a_hit_with_the_same_metrics(project: Path) -> None:
    r = again(project)
    assert r.cached and r.status == "passed"
    assert r.metrics["accuracy"] == 0.97
    assert len(r.claims) == 7 and all(c.ok for c in r.claims)
    assert (r.run_dir / "out" / "table.json").is_file()


def test_no_cache_forces_a_run(project: Path) -> None:
    assert not again(project, use_cache=False).cached
    assert again(project).cached


@pytest.mark.parametrize(
    "change",
    [
        lambda m: (m / "run.py").write_text((m / "run.py").read_text() + "\n# a comment is a change\n"),
        lambda m: (m / "helper.py").write_text("X = 1\n"),
        lambda m: (m / "data").mkdir() or (m / "data" / "rows.csv").write_text("a,b\n"),
        lambda m: (m / "module.toml").write_text((m / "module.toml").read_text().replace("size = 3", "size = 4")),
        lambda m: (m / "README.md").unlink(),
    ],
    ids=["run.py", "new-helper", "data-file", "params", "removed-file"],
)
def test_any_module_file_change_is_a_miss(project: Path, change) -> None:
    change(project / "evidence" / "ev-pass")
    assert not again(project).cached


def test_outputs_are_not_inputs(project: Path) -> None:
    module = project / "evidence" / "ev-pass"
    (module / "record").mkdir()
    (module / "record" / "record.json").write_text("{}")
    (module / "out").mkdir()
    (module / "out" / "metrics.json").write_text("{}")
    (module / "__pycache__").mkdir()
    (module / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"\0")
    assert again(project).cached


def test_declared_inputs_outside_the_module(project: Path) -> None:
    shared = project / "shared" / "dataset.csv"
    shared.parent.mkdir()
    shared.write_text("x\n1\n")
    toml = project / "evidence" / "ev-pass" / "module.toml"
    toml.write_text('inputs = ["shared/*.csv"]\n' + toml.read_text())
    assert not again(project).cached  # module.toml changed
    assert again(project).cached
    shared.write_text("x\n2\n")
    assert not again(project).cached
    (project / "shared" / "more.csv").write_text("y\n")
    assert not again(project).cached


def test_package_versions_are_in_the_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner_module.environment

    def upgraded(spec, cache_dir=None, digest=None):
        env = real(spec, cache_dir, digest)
        env["packages"] = {**env["packages"], "numpy": "99.0.0"}
        return env

    monkeypatch.setattr(runner_module, "environment", upgraded)
    assert not again(project).cached


def test_runner_version_is_in_the_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint, "__version__", "999.0")
    assert not again(project).cached


def test_device_seed_and_scale_are_in_the_key(project: Path, tmp_path: Path) -> None:
    gpu = GpuInfo(True, ("Mock GPU",), "mocked", ())
    # ev-pass is cited by a cpu note: declare it 'any' to let it move to the GPU
    note = project / "vault" / "patterns" / "passing-defence.md"
    note.write_text(note.read_text().replace("device: cpu", "device: any"))
    cpu = again(project)
    assert cpu.cached
    assert not again(project, gpu=gpu, host="cuda").cached
    assert again(project, gpu=gpu, host="cuda").cached
    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace("seed = 0", "seed = 1"))
    assert not again(project).cached
    smoke = again(project, scale="smoke")
    assert not smoke.cached and smoke.scale == "smoke"
    assert again(project, scale="smoke").cached


def test_failures_are_never_cached(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for _ in range(2):
        got = run_modules(project, "ev-fail", "ev-error")
        assert not got["ev-fail"].cached and got["ev-fail"].status == "failed"
        assert not got["ev-error"].cached and got["ev-error"].status == "error"
    cache = project / ".fmbuild" / "evidence" / "cache"
    assert not cache.exists() or not list(cache.rglob("*.json"))


def test_changed_claims_are_judged_again_without_a_run(project: Path) -> None:
    note = project / "vault" / "techniques" / "passing-technique.md"
    note.write_text(note.read_text().replace("'>= 0.95'", "'>= 0.99'"))
    r = again(project)
    assert r.cached and r.status == "failed"
    assert "measured 0.97" in r.reason


def test_corrupt_cache_entry_is_a_miss(project: Path) -> None:
    for entry in (project / ".fmbuild" / "evidence" / "cache").rglob("*.json"):
        entry.write_text("{not json")
    r = again(project)
    assert not r.cached and r.status == "passed"


def test_old_entries_are_pruned(project: Path) -> None:
    run_py = project / "evidence" / "ev-pass" / "run.py"
    from fmbuild.evidence.cache import KEEP_PER_MODULE

    for i in range(KEEP_PER_MODULE + 3):
        run_py.write_text(run_py.read_text() + f"\n# change {i}\n")
        again(project)
    entries = list((project / ".fmbuild" / "evidence" / "cache").rglob("*.json"))
    runs = [p for p in (project / ".fmbuild" / "evidence" / "runs").iterdir()]
    assert len(entries) <= KEEP_PER_MODULE and len(runs) == len(entries)


def test_inputs_hash_is_stable_across_places_and_ignores_outputs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    module = project / "evidence" / "ev-pass"
    first = inputs_hash(module)
    copy = tmp_path / "elsewhere" / "evidence" / "ev-pass"
    shutil.copytree(module, copy)
    (copy / "out").mkdir()
    (copy / "out" / "x.png").write_bytes(b"png")
    assert inputs_hash(copy, project_root=tmp_path / "elsewhere") == first


def test_module_imports_are_read_not_imported(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    module = project / "evidence" / "ev-uncited"
    (module / "run.py").write_text(
        "import os, json\nimport numpy as np\nfrom sklearn.datasets import load_digits\nimport helper\n"
        "from . import sibling\n"
    )
    (module / "helper.py").write_text("import scipy.stats\n")
    found = module_imports(read_module(module))
    assert found == {"numpy", "sklearn", "scipy"}
    packages = fingerprint.package_versions(found)
    assert "numpy" in packages and "scikit-learn" in packages


def test_cache_entry_records_what_the_site_needs(project: Path) -> None:
    entry = next((project / ".fmbuild" / "evidence" / "cache").rglob("*.json"))
    data = json.loads(entry.read_text())
    for key in ("module", "metrics", "duration_s", "device", "isolation", "environment", "date", "artifacts"):
        assert key in data


def test_remembered_imports_follow_the_code(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    state = project / ".fmbuild" / "evidence"
    spec = read_module(project / "evidence" / "ev-uncited")
    first = fingerprint.environment(spec, state, inputs_hash(spec.path, spec))
    assert "numpy" not in first["packages"]
    run_py = spec.path / "run.py"
    run_py.write_text("import numpy\n" + run_py.read_text())
    second = fingerprint.environment(spec, state, inputs_hash(spec.path, spec))
    assert "numpy" in second["packages"]
    remembered = json.loads((state / "imports.json").read_text())
    assert [k for k in remembered if k.startswith("ev-uncited:")] == [f"ev-uncited:{inputs_hash(spec.path, spec)}"]


# --- what a verdict depends on (issue 23, item 8) ---------------------------------------------

def test_the_effective_timeout_is_in_the_key(project: Path) -> None:
    """A pass under a 60 s timeout says nothing about a 1 s one: the lower limit runs again."""
    assert again(project).cached
    lowered = again(project, timeout_override=1)
    assert not lowered.cached
    assert again(project, timeout_override=1).cached


def test_limits_and_isolation_are_in_the_key(project: Path) -> None:
    from fmbuild.evidence.isolation import SubprocessExecutor

    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace("memory_mb = 1024", "memory_mb = 900"))
    assert not again(project).cached
    first = again(project, executor=SubprocessExecutor())
    second = again(project, executor=SubprocessExecutor())
    assert second.cached and (first.cached is False or first.isolation.startswith("subprocess"))


def test_two_modules_with_identical_code_do_not_share_metrics(project: Path) -> None:
    """A copy of ev-pass is another experiment: it runs, and its record names itself."""
    shutil.copytree(project / "evidence" / "ev-pass", project / "evidence" / "ev-pass-copy")
    r = run_modules(project, "ev-pass-copy")["ev-pass-copy"]
    assert not r.cached and r.status == "passed" and r.module == "ev-pass-copy"


# --- a cache entry edited by hand (issue 23, item 9) ---------------------------------------------

def _entry(project: Path) -> Path:
    return next((project / ".fmbuild" / "evidence" / "cache" / "ev-pass").rglob("*.json"))


def test_a_hand_edited_entry_changes_no_verdict(project: Path) -> None:
    entry = _entry(project)
    data = json.loads(entry.read_text())
    data["metrics"]["attack"]["fgsm_accuracy"] = 0.99  # would fail `<= 0.35` if it were believed
    entry.write_text(json.dumps(data))
    r = again(project)
    assert not r.cached and r.status == "passed"
    assert r.metrics["attack"]["fgsm_accuracy"] == 0.30


def test_a_forged_entry_with_a_recomputed_plain_hash_is_still_refused(project: Path) -> None:
    """The MAC needs the per-user key outside the repository: dropping or faking it is a miss."""
    entry = _entry(project)
    data = json.loads(entry.read_text())
    data["metrics"]["accuracy"] = 0.5
    data["mac"] = "0" * 64
    entry.write_text(json.dumps(data))
    assert not again(project).cached
    data.pop("mac")
    _entry(project).write_text(json.dumps(data))
    assert not again(project).cached


def test_record_refuses_a_cached_output_changed_after_its_run(project: Path) -> None:
    run_dir = again(project).run_dir
    (run_dir / "out" / "table.json").write_text('{"rows": 999}\n')
    r = again(project, record=True)
    assert r.cached and r.record.startswith("not written: table.json changed since its run")
    assert not (project / "evidence" / "ev-pass" / "record").exists()
    (run_dir / "out" / "extra.json").write_text("{}")
    (run_dir / "out" / "table.json").write_text('{"rows": 3}\n')
    r = again(project, record=True)
    assert "extra.json, which its cache entry does not list" in r.record
    again(project, record=True, use_cache=False)
    assert json.loads((project / "evidence" / "ev-pass" / "record" / "artifacts" / "table.json").read_text()) == {"rows": 3}


def test_record_refuses_a_cached_log_changed_after_its_run(project: Path) -> None:
    run_dir = again(project).run_dir
    (run_dir / "log.txt").write_text("forged log\n")
    r = again(project, record=True)
    assert r.record == "not written: the run's log changed since the run (run again with --no-cache)"


def test_without_a_usable_key_the_cache_is_off(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    r = again(project, cache_key_file=blocker / "cache.key")
    assert not r.cached and r.status == "passed"
    assert not again(project, cache_key_file=blocker / "cache.key").cached


def test_pruning_reads_no_entry(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge entry (an old format, a forged file) costs the prune nothing: it goes by file times."""
    from fmbuild.evidence import cache as cache_module

    folder = _entry(project).parent
    (folder / ("f" * 64 + ".json")).write_bytes(b" " * (cache_module.MAX_ENTRY_BYTES + 1))
    read = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: read.append(self) or real(self, *a, **k))
    run_py = project / "evidence" / "ev-pass" / "run.py"
    run_py.write_text(run_py.read_text() + "\n# changed\n")
    assert not again(project).cached
    assert not [p for p in read if p.parent == folder]


def test_leftovers_of_older_layouts_are_removed(project: Path) -> None:
    import os
    import time

    state = project / ".fmbuild" / "evidence"
    (state / "cache" / ("a" * 64 + ".json")).write_text("{}")  # the flat layout before the MAC
    orphan = state / "runs" / ("b" * 64)
    (orphan / "out").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    run_py = project / "evidence" / "ev-pass" / "run.py"
    run_py.write_text(run_py.read_text() + "\n# changed\n")
    assert not again(project).cached
    assert not (state / "cache" / ("a" * 64 + ".json")).exists() and not orphan.exists()
    assert again(project).cached


def test_passed_through_variables_are_in_the_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OMP_NUM_THREADS reaches the run (and its timings): another value is another run."""
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert not again(project).cached
    assert again(project).cached
