"""`fmbuild verify` as a user runs it: selection, exit codes, text / JSON / JUnit output, usage errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from test_evidence_support import fmbuild, make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("cli"))


def test_passing_selection_exits_0_and_says_cached(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-pass", "ev-gpu")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "passed" in done.stdout and "skipped" in done.stdout and "needs a GPU" in done.stdout
    again = fmbuild(project, "verify", "evidence/ev-pass")
    assert again.returncode == 0
    assert "(cached)" in again.stderr  # the per-module line
    assert "1 passed" in again.stdout


def test_failures_exit_1_with_details(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-fail", "ev-error", "ev-pass")
    assert done.returncode == 1
    out = done.stdout
    assert "techniques/failing-technique.md: accuracy >= 0.9" in out and "measured 0.42" in out
    assert "RuntimeError: the fixture module broke on purpose" in out


def test_select_by_note_path_id_and_name(project: Path) -> None:
    for target in ("vault/techniques/failing-technique.md", "techniques/failing-technique", "failing-technique",
                   "ev-001"):
        done = fmbuild(project, "verify", target, "--format", "json")
        data = json.loads(done.stdout)
        assert [r["module"] for r in data["results"]] == [_module_of_id(project, target)], target


def _module_of_id(project: Path, target: str) -> str:
    if target == "ev-001":
        for path in (project / "vault").rglob("*.md"):
            if "id: ev-001" in path.read_text():
                return path.read_text().split("module: evidence/")[1].split("\n")[0]
    return "ev-fail"


def test_json_output(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-pass", "ev-fail", "--format", "json")
    assert done.returncode == 1
    data = json.loads(done.stdout)  # stdout is only JSON
    assert data["ok"] is False and data["counts"]["failed"] == 1
    by = {r["module"]: r for r in data["results"]}
    assert by["ev-fail"]["claims"][0]["measured"] == 0.42
    assert by["ev-pass"]["metrics"]["accuracy"] == 0.97 and by["ev-pass"]["isolation"]


def test_junit_output(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "evidence.xml"
    done = fmbuild(project, "verify", "ev-pass", "ev-fail", "ev-error", "ev-gpu", "--junit", str(report))
    assert done.returncode == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["ev-fail"].find("failure") is not None
    assert "broke on purpose" in (cases["ev-error"].find("error").text or "")
    assert cases["ev-gpu"].find("skipped").get("message").startswith("needs a GPU")


def test_timeout_exits_1(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-timeout")
    assert done.returncode == 1 and "timed out after 2 s" in done.stdout


def test_override_timeout(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-gpu", "--timeout", "1", "--format", "json")
    assert done.returncode == 0  # skipped on this CPU host is not a failure


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-thing"], "names no evidence module and no note"),
        (["--device", "tpu"], "Invalid value"),
        (["--jobs", "0"], "Invalid value"),
        (["--record", "--scale", "smoke"], "--record needs --scale full"),
        (["--changed-since", "no-such-ref"], "no-such-ref"),
        (["--format", "yaml"], "Invalid value"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(project: Path, args: list[str], message: str) -> None:
    done = fmbuild(project, "verify", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_outside_a_project_is_a_usage_error(tmp_path: Path) -> None:
    done = fmbuild(tmp_path, "verify")
    assert done.returncode == 2 and "fmbuild.toml" in done.stderr


def test_record_flag_writes_records(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", "ev-pass", "--record")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "evidence" / "ev-pass" / "record" / "record.json").is_file()
    assert "record written" in done.stderr


def test_subprocess_isolation_warns(project: Path) -> None:
    done = fmbuild(project, "verify", "ev-uncited", "--isolation", "subprocess", "--no-cache")
    assert done.returncode == 0
    assert "weaker isolation" in done.stderr and "read-only repository" in done.stderr
