"""The GitHub workflows: valid against GitHub's workflow schema, actions pinned by commit,
least-privilege permissions, and every command they run is a `ci.sh` step that these tests run
against a small project (a temporary git repository made from tests/vaults/ed-basic)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_edition_support import commit_all, git, make_repo

pytest_plugins = ["test_edition_support"]

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
CI = REPO / ".github" / "scripts" / "ci.sh"
FILES = sorted(WORKFLOWS.glob("*.yml"))

# Every action the workflows use, at the commit of the release named in the comment beside it.
PINNED = {
    "actions/checkout": "11bd71901bbe5b1630ceea73d27597364c9af683",  # v4.2.2
    "actions/setup-python": "a26af69be951a213d495a4c3e4e4022e16d87065",  # v5.6.0
    "actions/upload-artifact": "ea165f8d65b6e75b540449e92b4886f43607fa02",  # v4.6.2
    "actions/configure-pages": "983d7736d9b0ae728b81ab479565c72886d7745b",  # v5.0.0
    "actions/upload-pages-artifact": "56afc609e74202658d3ffba0e8f6dda462b719fa",  # v3.0.1
    "actions/deploy-pages": "d6db90164ac5ed86f2b6aed7e0febac5b3c0c03e",  # v4.0.5
}
# Jobs that may hold a write permission, and which.
WRITES = {("main.yml", "deploy"): {"pages", "id-token"}, ("edition.yml", "cut"): {"contents"},
          ("drift.yml", "reverify"): {"issues"}}
# ci.sh steps the tests below run; `system` (sudo, CI machines only) is the one they cannot.
TESTED_STEPS = {"check", "verify-changed", "verify-all", "build", "cut-edition", "drift-report"}


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # 'on' stays a string key


def steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job.get("steps", [])]


def test_there_is_a_workflow_for_each_event() -> None:
    events = {path.name: set(load(path)["on"]) for path in FILES}
    assert events == {"pull-request.yml": {"pull_request"}, "main.yml": {"push", "workflow_dispatch"},
                      "edition.yml": {"push"}, "drift.yml": {"schedule", "workflow_dispatch"}}
    assert load(WORKFLOWS / "edition.yml")["on"]["push"]["tags"] == ["edition-*"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_valid_against_githubs_workflow_schema(path: Path) -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema ships GitHub's workflow schema (dev dependency)")
    import check_jsonschema
    import jsonschema

    schema_file = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "github-workflows.json"
    schema = json.loads(schema_file.read_text())
    document = yaml.safe_load(path.read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as true
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit(path: Path) -> None:
    for _job, step in steps(load(path)):
        if "uses" not in step:
            continue
        action, _, ref = step["uses"].partition("@")
        assert PINNED.get(action) == ref, f"{path.name}: {step['uses']} is not pinned to the reviewed commit"
    for line in path.read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+$", line), f"{path.name}: {line.strip()} lacks its version comment"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert isinstance(granted, dict), f"{path.name}:{name}: permissions must be listed one by one"
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes == WRITES.get((path.name, name), set()), f"{path.name}:{name} writes {writes}"
    assert "pull_request_target" not in workflow["on"]
    for _job, step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] == "false"


def test_pull_request_code_never_meets_a_secret() -> None:
    text = (WORKFLOWS / "pull-request.yml").read_text()
    assert "secrets." not in text and "github.token" not in text


def run_commands() -> list[tuple[str, str]]:
    found = []
    for path in FILES:
        for _job, step in steps(load(path)):
            if "run" in step:
                found.append((path.name, step["run"]))
    return found


def test_every_command_is_setup_a_tested_ci_step_or_gh() -> None:
    used = set()
    for name, command in run_commands():
        if command == "bash scripts/setup.sh":
            continue
        if command.startswith("bash .github/scripts/ci.sh "):
            step = shlex.split(command)[2]
            used.add(step)
            assert step in TESTED_STEPS | {"system"}, f"{name}: ci.sh {step} is not a step the tests run"
            continue
        lines = [line.strip() for line in command.strip().splitlines()]
        programs = {shlex.split(line)[0] for line in lines if line and not line.startswith(("if ", "else", "fi"))}
        programs.discard("open=$(gh")
        assert programs <= {"gh"} or all(line.startswith(("gh ", "open=", "if ", "else", "fi")) or "gh " in line
                                         for line in lines), f"{name}: unexpected command {command!r}"
    assert used == TESTED_STEPS | {"system"}
    assert (REPO / "scripts" / "setup.sh").is_file()


# --- the ci.sh steps, run for real ----------------------------------------------------------------


def ci(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    full = {**os.environ, "FMBUILD": str(bindir / "fmbuild"), "PYTHON": sys.executable, "VERIFY_JOBS": "1", **(env or {})}
    return subprocess.run(["bash", str(CI), *args], cwd=repo, env=full, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def project(recorded_project: Path, tmp_path: Path) -> Path:
    return make_repo(recorded_project, tmp_path / "repo")


def test_ci_check_emits_github_annotations(project: Path) -> None:
    assert ci(project, "check").returncode == 0
    note = project / "vault" / "playbooks" / "triage.md"
    note.write_text(note.read_text().replace("[[sources/reading]]", "[[sources/nowhere]]"))
    done = ci(project, "check")
    assert done.returncode == 1
    assert re.search(r"^::error file=vault/playbooks/triage\.md,line=\d+", done.stdout, re.MULTILINE), done.stdout


def test_ci_verify_changed_and_all(project: Path) -> None:
    git(project, "checkout", "-q", "-b", "feature")
    (project / "evidence" / "ed-count" / "README.md").write_text("# ed-count\n\nEdited on a branch.\n")
    commit_all(project, "edit the module")
    done = ci(project, "verify-changed", "main", "changed.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'name="ed-count"' in (project / "changed.xml").read_text()
    git(project, "checkout", "-q", "main")
    nothing = ci(project, "verify-changed", "main", "none.xml")
    assert nothing.returncode == 0 and 'tests="0"' in (project / "none.xml").read_text()
    everything = ci(project, "verify-all", "all.xml")
    assert everything.returncode == 0 and 'name="ed-count"' in (project / "all.xml").read_text()


def test_ci_cut_edition_signs_and_the_site_publishes_it(project: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = tmp_path / "edition.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    done = ci(project, "cut-edition", "2026.1", env={"EDITION_SIGNING_KEY": pem, "EDITION_PUBLIC_KEY_FILE": str(public),
                                                    "RUNNER_TEMP": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "editions" / "2026.1" / "signature.json").is_file()
    assert "signature by key" in done.stdout and not list(tmp_path.glob("fmbuild-key.*"))  # the key file is gone
    again = ci(project, "cut-edition", "2026.1")  # committed or present: verified, not cut again
    assert again.returncode == 0 and "verifying it instead of cutting" in again.stdout

    built = ci(project, "build", str(tmp_path / "site"))
    assert built.returncode == 0, built.stdout + built.stderr
    page = (tmp_path / "site" / "editions" / "2026.1" / "index.html").read_text()
    assert 'id="fm-edition-banner"' in page and "Threshold evasion" in page
    versions = json.loads((tmp_path / "site" / "versions.json").read_text())
    assert [v["version"] for v in versions] == [".", "editions/2026.1"]


def test_ci_drift_report(project: Path, tmp_path: Path) -> None:
    done = ci(project, "drift-report", "drift.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout and not (project / "drift.md").exists()
    # A run that fails now, of a module whose committed record passed with the same inputs.
    record = json.loads((project / "evidence" / "ed-count" / "record" / "record.json").read_text())
    failing = {"results": [{"module": "ed-count", "status": "failed", "reason": "claim flagged_rate <= 0.2: measured 0.31",
                            "inputs_hash": record["inputs_hash"],
                            "environment": {"python": record["environment"]["python"],
                                            "packages": {**record["environment"].get("packages", {}), "numpy": "9.9.9"}}},
                           {"module": "ed-count-changed", "status": "failed", "inputs_hash": "other"}]}
    (tmp_path / "verify.json").write_text(json.dumps(failing))
    script = subprocess.run([sys.executable, str(REPO / ".github" / "scripts" / "drift_report.py"), str(tmp_path / "verify.json"),
                             str(project / "drift.md")], cwd=project, capture_output=True, text=True, check=False)
    assert script.returncode == 0, script.stderr
    report = (project / "drift.md").read_text()
    assert "### `ed-count`: failed" in report and "`numpy`" in report and "9.9.9" in report
    assert "ed-count-changed" not in report  # no committed record: not drift
    bad = subprocess.run([sys.executable, str(REPO / ".github" / "scripts" / "drift_report.py"), str(tmp_path / "nope.json"),
                          "x.md"], cwd=project, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "not fmbuild verify JSON" in bad.stderr


def test_ci_rejects_an_unknown_step(project: Path) -> None:
    done = ci(project, "deploy-everything")
    assert done.returncode == 2 and "usage" in done.stderr
