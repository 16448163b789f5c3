"""`fmbuild check`'s evidence rules on the `ev-rules` fixture: evidence-invalid, claim-invalid,
maturity-unearned, evidence-stale and metric-unknown, before and after a record exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmbuild.check import run_checks
from fmbuild.config import load_config
from fmbuild.diagnostics import Diagnostic
from fmbuild.vault.load import load_vault
from fmbuild.evidence.contract import read_module
from fmbuild.evidence.runner import Job
from test_evidence_support import fmbuild, make_project, make_runner

CODES = {"evidence-invalid", "claim-invalid", "maturity-unearned", "evidence-stale", "metric-unknown"}


def diagnostics(project: Path) -> list[Diagnostic]:
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    return [d for d in run_checks(vault, config) if d.code in CODES]


def of(found: list[Diagnostic], note: str, code: str | None = None) -> list[Diagnostic]:
    return [d for d in found if d.path == f"techniques/{note}.md" and (code is None or d.code == code)]


def record_good(project: Path) -> None:
    """Record the `good` module as its own claims stood at the time: none of the fixture's notes
    (some of them are broken on purpose, which would fail the run). The notes' claims are then
    judged against the recorded metrics, as after an edit made since the record."""
    job = Job(read_module(project / "evidence" / "good"), [])
    result = make_runner(project, record=True).run(job)
    assert result.record == "written", result.reason


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("rules"), "ev-rules")
    record_good(project)
    return project


def test_without_a_record_verified_is_unearned(tmp_path: Path) -> None:
    project = make_project(tmp_path, "ev-rules")
    found = diagnostics(project)
    [d] = of(found, "verified-earned", "maturity-unearned")
    assert "no committed record" in d.message and d.severity == "error" and d.line == 5
    # prose citing a metric without any record yet: a warning that says how to make one
    refs = of(found, "verified-earned", "metric-unknown")
    assert refs and all(d.severity == "warning" and "no committed record" in d.message for d in refs)


def test_earned_verified_note_is_clean(recorded: Path) -> None:
    assert of(diagnostics(recorded), "verified-earned") == []


def test_verified_with_a_claim_the_record_does_not_meet(recorded: Path) -> None:
    [d] = of(diagnostics(recorded), "verified-failing", "maturity-unearned")
    assert "failing" in d.message and "measured 0.97" in d.message


def test_verified_needs_claims_and_evidence(recorded: Path) -> None:
    found = diagnostics(recorded)
    assert "states no claims" in of(found, "verified-no-claims", "maturity-unearned")[0].message
    assert "needs an evidence block" in of(found, "verified-no-evidence", "maturity-unearned")[0].message


def test_claim_invalid_points_at_the_claim_line(recorded: Path) -> None:
    found = of(diagnostics(recorded), "bad-claims")
    invalid = {d.message.split(":")[0]: d for d in found if d.code == "claim-invalid"}
    assert set(invalid) == {"claim on attack.success_rate", "claim on weird", "claim on other"}
    assert invalid["claim on attack.success_rate"].line == 14
    assert invalid["claim on weird"].line == 15 and '"== 0.5"' in invalid["claim on weird"].message
    assert invalid["claim on other"].line == 16
    assert not [d for d in found if d.code == "evidence-invalid"]


def test_evidence_invalid_fields(recorded: Path) -> None:
    messages = [d.message for d in of(diagnostics(recorded), "bad-block", "evidence-invalid")]
    joined = "\n".join(messages)
    assert "evidence.claim: unknown field" in joined
    assert "'tpu' is not one of cpu, gpu, any" in joined
    assert "evidence.timeout" in joined
    assert "evidence/missing-module: no such module folder" in joined


def test_evidence_not_a_mapping_and_bad_paths(recorded: Path) -> None:
    found = diagnostics(recorded)
    assert "must be a mapping" in of(found, "not-a-mapping", "evidence-invalid")[0].message
    assert "must be 'evidence/<name>'" in of(found, "bad-module-path", "evidence-invalid")[0].message
    broken = "\n".join(d.message for d in of(found, "broken-module", "evidence-invalid"))
    assert "neither run.py nor notebook.ipynb" in broken and "tpu" in broken


def test_metric_refs(recorded: Path) -> None:
    found = of(diagnostics(recorded), "prose-refs", "metric-unknown")
    by_ref = {d.message.split("}}")[0] + "}}": d for d in found}
    assert set(by_ref) == {"{{evidence:precision}}", "{{evidence:ghost-module/accuracy}}"}
    assert "has no metric 'precision'" in by_ref["{{evidence:precision}}"].message
    assert "accuracy" in by_ref["{{evidence:precision}}"].message  # lists what the record has
    assert by_ref["{{evidence:precision}}"].line == 16
    assert "no evidence module named 'ghost-module'" in by_ref["{{evidence:ghost-module/accuracy}}"].message
    [d] = of(diagnostics(recorded), "prose-no-evidence", "metric-unknown")
    assert "no evidence module" in d.message


def test_stale_record_warns_and_unearns(tmp_path: Path) -> None:
    project = make_project(tmp_path, "ev-rules")
    record_good(project)
    run_py = project / "evidence" / "good" / "run.py"
    run_py.write_text(run_py.read_text() + "\n# changed after the record\n")
    found = diagnostics(project)
    stale = of(found, "verified-earned", "evidence-stale")
    assert stale and stale[0].severity == "warning" and "fmbuild verify --record evidence/good" in stale[0].message
    [d] = of(found, "verified-earned", "maturity-unearned")
    assert "stale" in d.message
    assert of(found, "prose-refs", "evidence-stale")  # every citing note hears about it


def test_check_command_reports_them(recorded: Path) -> None:
    done = fmbuild(recorded, "check", "--format", "json")
    assert done.returncode == 1
    assert "maturity-unearned" in done.stdout and "claim-invalid" in done.stdout
