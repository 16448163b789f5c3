"""Committed records: written with --record on passing full runs only, atomically, portable, and
read back by the API the site, the Editions and `check` use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmbuild.config import load_config
from fmbuild.evidence.records import evidence_state, is_fresh, load_record
from fmbuild.vault.load import load_vault
from test_evidence_support import make_project, run_modules


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def note(project: Path, path: str):
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    return config, vault.notes[path]


def test_record_is_written_and_read_back(project: Path) -> None:
    r = run_modules(project, "ev-pass", record=True)["ev-pass"]
    assert r.status == "passed" and r.record == "written"
    module = project / "evidence" / "ev-pass"
    folder = module / "record"
    assert sorted(p.name for p in folder.iterdir()) == ["artifacts", "log.txt", "metrics.json", "record.json"]
    record = load_record(module)
    assert record is not None
    assert record.module == "ev-pass" and record.status == "passed" and record.scale == "full"
    assert record.metrics == json.loads((folder / "metrics.json").read_text())
    assert {c["note"] for c in record.claims} == {"techniques/passing-technique.md", "patterns/passing-defence.md"}
    assert all(set(c) == {"note", "metric", "expected", "measured", "ok", "message"} for c in record.claims)
    assert record.device == "cpu" and record.isolation and record.seed == 0
    assert record.environment["python"] and "packages" in record.environment and record.environment["platform"]
    assert record.date.endswith("Z") and record.fmbuild
    assert "table.json" in record.artifacts and (record.artifact_dir / "table.json").is_file()
    assert record.artifact_dir == folder / "artifacts"
    assert is_fresh(record, module)
    assert not [p for p in module.iterdir() if p.name.startswith(".record")]


def test_record_holds_no_absolute_or_home_paths(project: Path) -> None:
    run_modules(project, "ev-pass", "ev-notebook", record=True)
    for name in ("ev-pass", "ev-notebook"):
        folder = project / "evidence" / name / "record"
        for path in (folder / "record.json", folder / "log.txt"):
            text = path.read_text()
            assert str(project) not in text and str(Path.home()) + "/" not in text, path
            assert "/fmbuild/out" not in text


def test_notebook_record_keeps_the_executed_notebook(project: Path) -> None:
    run_modules(project, "ev-notebook", record=True)
    record = load_record(project / "evidence" / "ev-notebook")
    assert record is not None and "notebook.executed.ipynb" in record.artifacts


def test_failing_run_writes_nothing_and_keeps_the_old_record(project: Path) -> None:
    run_modules(project, "ev-pass", record=True)
    before = (project / "evidence" / "ev-pass" / "record" / "record.json").read_text()
    (project / "evidence" / "ev-pass" / "run.py").write_text("raise SystemExit(3)\n")
    r = run_modules(project, "ev-pass", record=True)["ev-pass"]
    assert r.status == "error" and r.record.startswith("not written")
    assert (project / "evidence" / "ev-pass" / "record" / "record.json").read_text() == before
    r = run_modules(project, "ev-fail", record=True)["ev-fail"]
    assert r.status == "failed" and not (project / "evidence" / "ev-fail" / "record").exists()


def test_smoke_runs_leave_no_record(project: Path) -> None:
    r = run_modules(project, "ev-pass", record=True, scale="smoke")["ev-pass"]
    assert r.status == "passed" and "smoke" in r.record
    assert not (project / "evidence" / "ev-pass" / "record").exists()


def test_a_cached_run_can_be_recorded(project: Path) -> None:
    run_modules(project, "ev-pass")
    r = run_modules(project, "ev-pass", record=True)["ev-pass"]
    assert r.cached and r.record == "written"
    record = load_record(project / "evidence" / "ev-pass")
    assert record is not None and "table.json" in record.artifacts


def test_evidence_state(project: Path) -> None:
    path = "techniques/passing-technique.md"
    config, n = note(project, path)
    state, detail = evidence_state(config, n)
    assert state == "none" and "fmbuild verify --record evidence/ev-pass" in detail

    run_modules(project, "ev-pass", record=True)
    config, n = note(project, path)
    assert evidence_state(config, n)[0] == "passing"

    # A claim tightened after the run is judged against the recorded metrics.
    text = (project / "vault" / path).read_text()
    (project / "vault" / path).write_text(text.replace("'>= 0.95'", "'>= 0.99'"))
    config, n = note(project, path)
    state, detail = evidence_state(config, n)
    assert state == "failing" and "measured 0.97" in detail
    (project / "vault" / path).write_text(text)

    (project / "evidence" / "ev-pass" / "run.py").write_text(
        (project / "evidence" / "ev-pass" / "run.py").read_text() + "\n# changed\n")
    config, n = note(project, path)
    state, detail = evidence_state(config, n)
    assert state == "stale" and "changed since" in detail


def test_unreadable_records_are_none(project: Path) -> None:
    folder = project / "evidence" / "ev-pass" / "record"
    folder.mkdir()
    (folder / "record.json").write_text("{broken")
    assert load_record(project / "evidence" / "ev-pass") is None
    (folder / "record.json").write_text(json.dumps({"module": "ev-pass"}))
    assert load_record(project / "evidence" / "ev-pass") is None
    assert load_record(project / "evidence" / "no-such-module") is None


def test_secrets_in_the_log_are_redacted(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-very-secret-value"
    monkeypatch.setenv("MY_API_TOKEN", secret)
    module = project / "evidence" / "ev-uncited"
    # The sandbox never sees the variable, so plant the value in the module's own output instead.
    (module / "run.py").write_text(
        "import json, os\nfrom pathlib import Path\nprint('leaked: ' + 'hunter2-' + 'very-secret-value')\n"
        "(Path(os.environ['FMBUILD_OUT']) / 'metrics.json').write_text(json.dumps({'x': 1}))\n"
    )
    r = run_modules(project, "ev-uncited", record=True)["ev-uncited"]
    assert r.status == "passed"
    log = (module / "record" / "log.txt").read_text()
    assert secret not in log and "[redacted]" in log


# --- concurrent writers and interrupted swaps (issue 23, item 10) -------------------------------

_WRITER = """
import sys
from pathlib import Path
from fmbuild.evidence.records import Record, write_record
module, out, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
record = Record(module="ev-pass", status="passed", inputs_hash="h", metrics={"writer": int(n)}, claims=[],
                duration_s=0.1, device="cpu", isolation="test", environment={}, seed=0, scale="full",
                date="2026-12-02T00:00:00Z", fmbuild="test", log_tail="", artifacts=[])
for _ in range(5):
    write_record(module, record, out, "log of writer " + n + "\\n")
"""


def test_concurrent_writers_all_succeed_and_leave_one_whole_record(project: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    module = project / "evidence" / "ev-pass"
    out = tmp_path / "out"
    out.mkdir()
    (out / "plot.png").write_bytes(b"png" * 1000)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(module), str(out), str(n)],
                              stderr=subprocess.PIPE, text=True) for n in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    record = load_record(module)
    assert record is not None and record.artifacts == ["plot.png"]
    writer = record.metrics["writer"]
    assert (module / "record" / "log.txt").read_text() == f"log of writer {writer}\n"
    assert not [p.name for p in module.iterdir() if p.name.startswith(".record")]


def test_a_kill_between_the_renames_never_loses_the_record(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the atomic exchange is unavailable the swap is two renames; a kill between them
    leaves the old record readable, and the next writer puts it back before it writes."""
    import fmbuild.evidence.records as records

    run_modules(project, "ev-pass", record=True)
    module = project / "evidence" / "ev-pass"
    before = load_record(module)
    assert before is not None
    monkeypatch.setattr(records, "_exchange", lambda a, b: False)
    real_rename = Path.rename

    def killed_after_first(self: Path, target):  # the first rename happens, then the process dies
        real_rename(self, target)
        if self.name == "record":
            raise KeyboardInterrupt

    monkeypatch.setattr(Path, "rename", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_modules(project, "ev-pass", record=True, use_cache=False)
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not (module / "record").exists()
    survived = load_record(module)  # readers still find the whole old record
    assert survived is not None and survived.date == before.date
    r = run_modules(project, "ev-pass", record=True, use_cache=False)["ev-pass"]
    assert r.record == "written"
    assert (module / "record" / "record.json").is_file()
    assert not [p.name for p in module.iterdir() if p.name.startswith(".record")]


def test_records_hold_standard_json_only(project: Path) -> None:
    from fmbuild.evidence.records import Record, write_record

    record = Record(module="ev-pass", status="passed", inputs_hash="h", metrics={"x": float("nan")}, claims=[],
                    duration_s=0.1, device="cpu", isolation="t", environment={}, seed=0, scale="full",
                    date="d", fmbuild="t", log_tail="", artifacts=[])
    module = project / "evidence" / "ev-pass"
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_record(module, record, module, "")
    assert not (module / "record").exists()
    assert not [p.name for p in module.iterdir() if p.name.startswith(".record")]
