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


def test_shards_of_a_selection_run_it_once_between_them(project: Path) -> None:
    names = ["ev-pass", "ev-fail", "ev-error", "ev-gpu"]
    seen: list[str] = []
    for k in (1, 2):
        done = fmbuild(project, "verify", *names, "--shard", f"{k}/2", "--format", "json")
        assert f"shard {k}/2: " in done.stderr and " of 4 modules" in done.stderr
        seen += [r["module"] for r in json.loads(done.stdout)["results"]]
    assert sorted(seen) == sorted(names)
    bad = fmbuild(project, "verify", "--shard", "3/2")
    assert bad.returncode == 2 and "--shard 3/2: K must be between 1 and N" in bad.stderr


def test_merge_of_shard_reports_gives_one_verdict(project: Path, tmp_path: Path) -> None:
    names = ["ev-pass", "ev-fail", "ev-gpu"]
    files: list[str] = []
    for k in (1, 2):
        report, junit = tmp_path / f"shard-{k}.json", tmp_path / f"shard-{k}.xml"
        done = fmbuild(project, "verify", *names, "--shard", f"{k}/2", "--format", "json", "--junit", str(junit))
        report.write_text(done.stdout, encoding="utf-8")
        files += ["--merge", str(report), "--merge", str(junit)]
    merged = fmbuild(project, "verify", *files, "--format", "json", "--junit", str(tmp_path / "all.xml"))
    assert merged.returncode == 1  # ev-fail fails in whichever shard ran it
    doc = json.loads(merged.stdout)
    assert sorted(r["module"] for r in doc["results"]) == sorted(names)
    assert doc["counts"]["failed"] == 1 and doc["counts"]["passed"] == 1 and doc["counts"]["skipped"] == 1
    suite = ET.parse(tmp_path / "all.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    text = fmbuild(project, "verify", "--merge", str(tmp_path / "shard-1.json"), "--merge", str(tmp_path / "shard-2.json"))
    assert text.returncode == 1 and "1 failed" in text.stdout and "NOT ok" in text.stdout
    twice = fmbuild(project, "verify", "--merge", str(tmp_path / "shard-1.json"), "--merge", str(tmp_path / "shard-1.json"))
    assert twice.returncode == 2 and "merge each shard once" in twice.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{not json", encoding="utf-8")
    bad = fmbuild(project, "verify", "--merge", str(junk))
    assert bad.returncode == 2 and f"{junk}: not a JSON report of fmbuild verify" in bad.stderr
