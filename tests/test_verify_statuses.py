"""Each status the runner gives, on the `ev-basic` fixture project, through the real isolation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_evidence_support import make_project, run_modules


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = make_project(tmp_path_factory.mktemp("statuses"))
    model = project / "model.bin"
    model.write_bytes(b"GGUF" + bytes(60))
    import os

    os.environ["FMBUILD_TEST_MODEL"] = str(model)
    try:
        return run_modules(project, parallel=2)
    finally:
        del os.environ["FMBUILD_TEST_MODEL"]


def test_passed_with_every_claim_of_every_citing_note(results: dict) -> None:
    r = results["ev-pass"]
    assert r.status == "passed", r.reason
    notes = {c.note for c in r.claims}
    assert notes == {"techniques/passing-technique.md", "patterns/passing-defence.md"}
    assert len(r.claims) == 7 and all(c.ok for c in r.claims)
    assert r.metrics["attack"]["robust_accuracy"] == 0.81
    assert r.metrics["param_size"] == 3  # [params] reach the module
    assert r.metrics["seen_device"] == "cpu" and r.metrics["seen_seed"] == 0
    assert "table.json" in r.artifacts
    assert r.device == "cpu" and r.isolation and not r.cached


def test_failed_lists_each_unmet_claim_with_expected_and_measured(results: dict) -> None:
    r = results["ev-fail"]
    assert r.status == "failed"
    unmet = {c.metric: c for c in r.claims if not c.ok}
    assert unmet["accuracy"].measured == 0.42 and unmet["accuracy"].expected == ">= 0.9"
    assert "did not produce" in unmet["missing_metric"].message


def test_error_gives_the_exit_code_and_the_log_tail(results: dict) -> None:
    r = results["ev-error"]
    assert r.status == "error"
    assert "exited with code 1" in r.reason
    assert "broke on purpose" in r.log_tail and "training" in r.log_tail
    assert (r.run_dir / "log.txt").is_file()


def test_missing_metrics_is_an_error(results: dict) -> None:
    r = results["ev-nometrics"]
    assert r.status == "error" and "metrics.json" in r.reason
    assert "forgot the metrics" in r.log_tail


def test_timeout(results: dict) -> None:
    r = results["ev-timeout"]
    assert r.status == "timeout"
    assert 2 <= r.duration_s < 8
    assert "sleeping" in r.log_tail


@pytest.mark.parametrize(
    ("module", "reason"),
    [("ev-gpu", "needs a GPU"), ("ev-missing-pkg", "missing package not_a_real_package_fmbuild")],
)
def test_skipped_with_the_reason(results: dict, module: str, reason: str) -> None:
    r = results[module]
    assert r.status == "skipped"
    assert reason in r.reason


def test_declared_model_file_is_bound_read_only(results: dict) -> None:
    r = results["ev-model-file"]
    assert r.status == "passed", r.reason + r.log_tail
    assert r.metrics == {"model_bytes": 64, "model_writable": False}


def test_model_file_missing_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    monkeypatch.delenv("FMBUILD_TEST_MODEL", raising=False)
    r = run_modules(project, "ev-model-file")["ev-model-file"]
    assert r.status == "skipped" and "FMBUILD_TEST_MODEL (a test model file)" in r.reason and "not set" in r.reason
    monkeypatch.setenv("FMBUILD_TEST_MODEL", str(tmp_path / "absent.gguf"))
    r = run_modules(project, "ev-model-file")["ev-model-file"]
    assert r.status == "skipped" and "does not exist" in r.reason


def test_notebook_runs_in_a_kernel_and_is_kept_executed(results: dict) -> None:
    r = results["ev-notebook"]
    assert r.status == "passed", r.reason + r.log_tail
    assert r.metrics["mean"] == 2.5
    assert "kernel says hello" in (r.run_dir / "log.txt").read_text()
    executed = json.loads((r.run_dir / "out" / "notebook.executed.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("kernel says hello" in "".join(o.get("text", "")) for o in outputs)


def test_notebook_cell_error_is_an_error_with_the_executed_notebook(tmp_path: Path) -> None:
    import nbformat

    project = make_project(tmp_path)
    path = project / "evidence" / "ev-notebook" / "notebook.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("raise ValueError('cell two broke')"))
    nbformat.write(nb, path)
    r = run_modules(project, "ev-notebook")["ev-notebook"]
    assert r.status == "error"
    assert "cell two broke" in r.log_tail
    assert (r.run_dir / "out" / "notebook.executed.ipynb").is_file()


def test_uncited_module_passes_on_metrics_alone(results: dict) -> None:
    r = results["ev-uncited"]
    assert r.status == "passed" and not r.claims and "no claims" in r.reason


def test_invalid_module_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "evidence" / "ev-uncited" / "module.toml").write_text("device = 'tpu'\nbogus = 1\n")
    r = run_modules(project, "ev-uncited")["ev-uncited"]
    assert r.status == "error" and "tpu" in r.reason and "bogus" in r.reason


def test_smoke_scale_checks_presence_only(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    got = run_modules(project, "ev-pass", "ev-fail", scale="smoke")
    assert got["ev-pass"].status == "passed"
    # ev-fail: accuracy exists (value not judged) but missing_metric does not
    failed = got["ev-fail"]
    assert failed.status == "failed"
    assert [c.metric for c in failed.claims if not c.ok] == ["missing_metric"]


def test_two_seeds_failing_at_once_both_keep_their_run_and_the_last_one_wins(tmp_path: Path) -> None:
    # --jobs 2 can time out two seeds of one module in the same instant; keeping the failed runs
    # once raised "Directory not empty" and turned a timeout into an fmbuild error.
    import threading
    from types import SimpleNamespace

    from fmbuild.evidence.runner import Runner

    fake = SimpleNamespace(o=SimpleNamespace(state_dir=tmp_path / "state"))
    works = []
    for i in range(8):
        work = tmp_path / "work" / f"run-{i}"
        (work / "out").mkdir(parents=True)
        (work / "log.txt").write_text(f"run {i}\n")
        works.append(work)
    start = threading.Barrier(len(works))
    kept: list[Path] = []

    def keep(work: Path) -> None:
        start.wait()
        kept.append(Runner._keep_failure(fake, "mod", work))  # type: ignore[arg-type]

    threads = [threading.Thread(target=keep, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last = tmp_path / "state" / "last" / "mod"
    assert len(kept) == len(works) and all(k == last for k in kept)
    assert (last / "log.txt").read_text() in {f"run {i}\n" for i in range(len(works))}
    assert sorted(p.name for p in last.parent.iterdir()) == ["mod"]  # no trash left behind
