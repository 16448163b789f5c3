"""Runnable playbook steps: the marks, `check`'s diagnostics, `verify` running them in the
sandbox (statuses, the exact report of a broken step, caching, records, earned maturity), the
site panel, and every playbook and command sheet of the manual verifying."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fmbuild.evidence.isolation import bwrap_usable
from fmbuild.playbooks.steps import parse_steps
from test_evidence_support import VAULTS, fmbuild

REPO = Path(__file__).resolve().parent.parent
NOTE = "vault/playbooks/rehearsal.md"


def make_project(tmp_path: Path) -> Path:
    """The pb-basic project, with its module's committed record (the steps read it)."""
    target = tmp_path / "pb"
    shutil.copytree(VAULTS / "pb-basic", target, ignore=shutil.ignore_patterns(".fmbuild", "__pycache__"))
    return target


def edit(project: Path, old: str, new: str) -> None:
    path = project / NOTE
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


# --- marks ------------------------------------------------------------------------------------


def test_marks_parse_into_steps_with_their_expectations() -> None:
    text = (VAULTS / "pb-basic" / NOTE).read_text()
    parsed = parse_steps(text)
    assert parsed.problems == []
    assert [s.id for s in parsed.steps] == ["collect", "count", "report"]
    count = parsed.steps[1]
    assert count.line == 23 and count.contains == ("siem",) and count.code.startswith("jq -s --slurpfile m")
    assert count.expectations() == ["exit 0", "output contains 'siem'", "JSON lines == alerts"]
    report = parsed.steps[2]
    assert report.json_file == "report.json" and report.matches == (r"^wrote \d+ rules$",)


def test_marks_inside_code_and_unmarked_fences_are_not_steps() -> None:
    text = "```markdown\n%% step id=shown %%\n```bash\necho no\n```\n```\n\n```bash\necho plain\n```\n"
    assert not parse_steps(text)


@pytest.mark.parametrize("mark, after, message", [
    ("%% step id=a exitt=1 %%", "```bash\ntrue\n```", "step mark: unknown field 'exitt'; did you mean 'exit'?"),
    ("%% step exit=0 %%", "```bash\ntrue\n```", "step mark: id is required (id=NAME, lower case letters, digits and '-')"),
    ("%% step id=a exit=300 %%", "```bash\ntrue\n```", "step mark: exit must be between 0 and 255, not 300"),
    ("%% step id=a json.x=\">> 3\" %%", "```bash\ntrue\n```", "step mark: json.x: "),
    ("%% step id=a matches=\"(\" %%", "```bash\ntrue\n```", "step mark: matches '(' is not a regular expression: "),
    ("%% step id=a contains=\"open %%", "```bash\ntrue\n```", "step mark: No closing quotation"),
    ("%% step id=a %%", "```python\nprint()\n```", "a step runs a shell block; the fence after this mark is ```python: write ```bash"),
    ("%% step id=a %%", "\n```bash\ntrue\n```", "a step mark must stand on the line right before a ```bash fence (no blank line between)"),
    ("%% step id=a json-file=/etc/passwd json.x=\"== 1\" %%", "```bash\ntrue\n```",
     "step mark: json-file '/etc/passwd' must be a path inside the working folder"),
])
def test_malformed_marks_say_what_is_wrong(mark: str, after: str, message: str) -> None:
    problems = parse_steps(f"# t\n\n{mark}\n{after}\n").problems
    assert problems and problems[0].line == 3
    assert problems[0].message.startswith(message), problems[0].message


def test_duplicate_step_ids_are_reported() -> None:
    problems = parse_steps("%% step id=a %%\n```bash\ntrue\n```\n%% step id=a %%\n```bash\ntrue\n```\n").problems
    assert [(p.line, p.message) for p in problems] == [(5, "step id 'a' is already used on line 1")]


def test_check_reports_a_malformed_mark_with_its_line(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    edit(project, "%% step id=count contains=", "%% step id=count contain=")
    done = fmbuild(project, "check")
    assert done.returncode == 1
    assert ("vault/playbooks/rehearsal.md:23:1: error[step-invalid] step mark: unknown field 'contain'; "
            "did you mean 'contains'?") in done.stdout


# --- verify -------------------------------------------------------------------------------------


def test_steps_pass_then_come_from_the_cache_until_what_they_read_changes(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", NOTE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed   playbooks/rehearsal  3/3 steps" in done.stdout
    again = fmbuild(project, "verify", "rehearsal")
    assert "3/3 steps (cached)" in again.stdout
    # A file a step names changed: the steps run again, and judge the new content.
    metrics = project / "evidence/fake-siem/record/metrics.json"
    metrics.write_text('{"alerts": 4}\n')
    third = fmbuild(project, "verify", NOTE)
    assert third.returncode == 1 and "(cached)" not in third.stdout
    assert "step 'count' (line 23) failed: expected JSON lines == alerts, observed measured 3, expected == alerts = 4" in third.stdout


def test_a_cache_entry_edited_by_hand_is_a_miss_never_a_verdict(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    assert fmbuild(project, "verify", NOTE).returncode == 0
    entries = list((project / ".fmbuild/evidence/playbooks").glob("*.json"))
    assert len(entries) == 1
    # An entry whose recorded output was changed after the run: its MAC no longer matches.
    forged = json.loads(entries[0].read_text())
    forged["steps"][0]["output"] = "forged\n"
    entries[0].write_text(json.dumps(forged))
    again = fmbuild(project, "verify", NOTE, "--format", "json")
    result = json.loads(again.stdout)["playbooks"][0]
    assert not result["cached"] and "forged" not in json.dumps(result)


def test_a_step_redirecting_into_a_missing_folder_fails_with_step_command_and_output(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    edit(project, "mkdir -p /tmp/ir\n", "")
    done = fmbuild(project, "verify", NOTE)
    assert done.returncode == 1
    out = done.stdout
    assert "failed   playbooks/rehearsal  0/3 steps" in out
    assert "failed step collect (playbooks/rehearsal.md:14)" in out
    assert ("             $ jq -c 'select(.event==\"siem.alert\")' evidence/fake-siem/record/artifacts/log.jsonl "
            "> /tmp/ir/alerts.jsonl") in out
    assert "           expected: exit 0" in out
    assert "           observed: exit 1; it printed: step: line 1: /tmp/ir/alerts.jsonl: No such file or directory" in out
    assert "             | step: line 1: /tmp/ir/alerts.jsonl: No such file or directory" in out
    assert "skipped step count (playbooks/rehearsal.md:22)\n           step 'collect' failed" in out


def test_a_wrong_json_field_fails_naming_the_field(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    edit(project, 'json.rules.r1="== 2"', 'json.rules.r9="== 2"')
    done = fmbuild(project, "verify", NOTE, "--format", "json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["ok"] is False
    step = data["playbooks"][0]["steps"][2]
    assert (step["id"], step["status"], step["unmet"]) == ("report", "failed", "JSON rules.r9 == 2")
    assert step["observed"] == "the JSON has no field 'rules.r9'"
    assert step["output"] == "wrote 2 rules\n"


def test_statuses_timeout_error_and_skipped(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    note = project / NOTE
    body = note.read_text()
    extra = ("\n%% step id=needs-tool needs=no-such-tool-here %%\n```bash\nno-such-tool-here\n```\n"
             "\n%% step id=slow timeout=1 %%\n```bash\nsleep 30\n```\n")
    note.write_text(body + extra)
    done = fmbuild(project, "verify", NOTE, "--format", "json")
    steps = {s["id"]: s for s in json.loads(done.stdout)["playbooks"][0]["steps"]}
    assert steps["needs-tool"]["status"] == "skipped"
    assert steps["needs-tool"]["observed"] == "needs no-such-tool-here (not on PATH here)"
    assert steps["slow"]["status"] == "timeout"
    assert steps["slow"]["observed"] == "still running after 1 s; the process tree was killed"
    assert done.returncode == 1
    note.write_text(body + "\n%% step id=killed %%\n```bash\nkill -KILL $$\n```\n")
    killed = json.loads(fmbuild(project, "verify", NOTE, "--format", "json").stdout)["playbooks"][0]
    assert killed["status"] == "error" and killed["steps"][-1]["observed"] == "killed by SIGKILL"


def test_a_playbook_with_only_skipped_needs_is_skipped_not_verified(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / NOTE).write_text("---\ntitle: T\ntags: [type/playbook]\n---\n\n%% step id=a needs=no-such-tool-here %%\n"
                                "```bash\nno-such-tool-here\n```\n")
    done = fmbuild(project, "verify", NOTE, "--record", "--format", "json")
    result = json.loads(done.stdout)["playbooks"][0]
    assert done.returncode == 0 and result["status"] == "skipped"
    assert result["record"] == "not written: the run skipped"


def test_record_earns_verified_and_goes_stale_when_a_step_changes(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    edit(project, "maturity: draft", "maturity: verified")
    before = fmbuild(project, "check")
    assert before.returncode == 1
    assert ("vault/playbooks/rehearsal.md:5:1: error[maturity-unearned] maturity: verified, but its steps have no "
            "passing, fresh record (none: no committed record in evidence/_playbooks/playbooks/rehearsal/); "
            "use 'reviewed' until then") in before.stdout
    recorded = fmbuild(project, "verify", NOTE, "--record")
    assert recorded.returncode == 0 and "record written" in recorded.stdout
    record = json.loads((project / "evidence/_playbooks/playbooks/rehearsal/record.json").read_text())
    assert record["status"] == "passed" and [s["status"] for s in record["steps"]] == ["passed"] * 3
    assert record["steps"][0]["output"] == "3\n"
    assert fmbuild(project, "check").returncode == 0
    edit(project, "wc -l < /tmp/ir/alerts.jsonl", "wc -l < /tmp/ir/alerts.jsonl  # count")
    stale = fmbuild(project, "check")
    assert stale.returncode == 1 and "(stale: the steps or a file they name changed since the record" in stale.stdout


@pytest.mark.skipif(not bwrap_usable()[0], reason="bubblewrap cannot create namespaces here")
def test_a_step_cannot_write_the_repository_or_reach_the_network(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / NOTE).write_text(
        "---\ntitle: T\ntags: [type/playbook]\n---\n\n"
        "%% step id=write-repo %%\n```bash\ntouch vault/planted.md\n```\n"
    )
    done = fmbuild(project, "verify", NOTE, "--format", "json")
    step = json.loads(done.stdout)["playbooks"][0]["steps"][0]
    assert step["status"] == "failed" and "Read-only file system" in step["output"]
    assert not (project / "vault/planted.md").exists()
    (project / NOTE).write_text(
        "---\ntitle: T\ntags: [type/playbook]\n---\n\n"
        "%% step id=network exit=0 contains=\"unreachable\" %%\n```bash\n"
        "python -c 'import socket\ntry:\n    socket.create_connection((\"192.0.2.1\", 80), timeout=3)\n"
        "except OSError as e:\n    print(\"unreachable\", e)'\n```\n"
    )
    net = json.loads(fmbuild(project, "verify", NOTE, "--format", "json").stdout)["playbooks"][0]
    assert net["status"] == "passed", net
    assert "Network is unreachable" in net["steps"][0]["output"]


def test_the_site_panel_shows_statuses_and_escapes_recorded_output(tmp_path: Path) -> None:
    from fmbuild.config import load_config
    from fmbuild.site.steps_view import steps_panel
    from fmbuild.vault.load import load_vault

    project = make_project(tmp_path)
    edit(project, "wc -l < /tmp/ir/alerts.jsonl", "wc -l < /tmp/ir/alerts.jsonl\necho '<script>alert(1)</script>'")
    assert fmbuild(project, "verify", NOTE, "--record").returncode == 0
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    html = steps_panel(vault.notes["playbooks/rehearsal.md"], config)
    assert 'class="fm-evidence fm-steps fm-status--passed"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "<code>JSON lines == alerts</code>" in html and html.count("<td>passed</td>") == 3
    # Without a record, every step says it was not run.
    shutil.rmtree(project / "evidence/_playbooks")
    assert "No committed record" in steps_panel(vault.notes["playbooks/rehearsal.md"], config)


# --- the manual's own playbooks and command sheets ---------------------------------------------


def _step_notes() -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for folder in ("vault/playbooks", "vault/tools")
                  for p in (REPO / folder).glob("*.md") if parse_steps(p.read_text()).steps)


def _siem_logs_every_alert() -> bool:
    record = REPO / "evidence/siem-forwarding/record"
    lines = [json.loads(line) for line in (record / "artifacts/log.jsonl").read_text().splitlines() if line.strip()]
    metrics = json.loads((record / "metrics.json").read_text())
    return sum(e.get("event") == "siem.alert" for e in lines) == sum(r["alerts"] for r in metrics["rules"].values())


def test_every_playbook_and_command_sheet_of_the_manual_verifies(tmp_path: Path) -> None:
    notes = _step_notes()
    assert len([n for n in notes if n.startswith("vault/playbooks/")]) >= 6
    assert len([n for n in notes if n.startswith("vault/tools/")]) >= 4
    done = fmbuild(REPO, "verify", *notes, "--no-cache", "--format", "json", timeout=600)
    results = {r["note"]: r for r in json.loads(done.stdout)["playbooks"]}
    assert sorted(f"vault/{n}" for n in results) == notes
    assert _siem_logs_every_alert()  # what the rehearsal's alert-lines step checks on the committed record
    for note, result in results.items():
        assert result["status"] == "passed", (note, result["reason"])


def test_the_cache_key_covers_the_files_a_loop_or_a_glob_reads(tmp_path: Path) -> None:
    from fmbuild.playbooks.run import referenced_files

    (tmp_path / "evidence/a/record").mkdir(parents=True)
    (tmp_path / "evidence/b/record").mkdir(parents=True)
    (tmp_path / "evidence/c").mkdir(parents=True)
    for name in ("a", "b"):
        (tmp_path / f"evidence/{name}/record/metrics.json").write_text("{}")
    (tmp_path / "evidence/c/run.py").write_text("")
    text = ("%% step id=loop %%\n```bash\nfor m in a b; do cat \"evidence/$m/record/metrics.json\"; done\n```\n"
            "%% step id=glob %%\n```bash\njq . evidence/*/record/metrics.json\n```\n")
    steps = parse_steps(text).steps
    rel = lambda paths: sorted(p.relative_to(tmp_path.resolve()).as_posix() for p in paths)  # noqa: E731
    assert rel(referenced_files(tmp_path, steps[:1])) == ["evidence/a/record/metrics.json", "evidence/b/record/metrics.json"]
    assert rel(referenced_files(tmp_path, steps[1:])) == ["evidence/a/record/metrics.json", "evidence/b/record/metrics.json"]


def test_changed_since_selects_a_playbook_whose_input_changed_and_terminal_output_is_defanged(tmp_path: Path) -> None:
    import subprocess

    project = make_project(tmp_path)
    git = ["git", "-C", str(project), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    quiet = fmbuild(project, "verify", "--changed-since", "HEAD", "--format", "json")
    assert json.loads(quiet.stdout)["playbooks"] == []
    (project / "evidence/fake-siem/record/artifacts/log.jsonl").write_text('{"event": "siem.alert", "rule": "r1"}\n')
    done = fmbuild(project, "verify", "--changed-since", "HEAD")
    assert "failed   playbooks/rehearsal  1/3 steps" in done.stdout  # selected: a file its steps read changed
    # What a step prints reaches the terminal with its control characters written out.
    edit(project, "wc -l < /tmp/ir/alerts.jsonl", "printf 'evil\\033[2Jtext\\n'; exit 3")
    shown = fmbuild(project, "verify", NOTE)
    assert "\x1b" not in shown.stdout and "| evil\\x1b[2Jtext" in shown.stdout


def test_a_step_running_fmbuild_keys_its_cache_on_the_tool_but_its_record_on_its_inputs(tmp_path: Path) -> None:
    from fmbuild.playbooks.run import Playbook, inputs_hash

    (tmp_path / "src/fmbuild").mkdir(parents=True)
    (tmp_path / "src/fmbuild/cli.py").write_text("v1")
    (tmp_path / "fmbuild.toml").write_text("")
    steps = parse_steps("%% step id=a %%\n```bash\nfmbuild check vault\n```\n").steps
    playbook = Playbook("p.md", "P", steps)
    record_key, cache_key = inputs_hash(tmp_path, playbook), inputs_hash(tmp_path, playbook, include_tool=True)
    (tmp_path / "src/fmbuild/cli.py").write_text("v2")
    assert inputs_hash(tmp_path, playbook) == record_key
    assert inputs_hash(tmp_path, playbook, include_tool=True) != cache_key
    (tmp_path / "fmbuild.toml").write_text("[vault]\n")
    assert inputs_hash(tmp_path, playbook) != record_key


def test_an_edition_freezes_each_playbook_record_and_the_manual_shows_its_steps(tmp_path: Path) -> None:
    from fmbuild.config import load_config
    from fmbuild.editions.manifest import playbook_entries
    from fmbuild.vault.load import load_vault

    project = make_project(tmp_path)
    assert fmbuild(project, "verify", NOTE, "--record").returncode == 0
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    [entry] = playbook_entries(config, vault)
    assert entry["note"] == "playbooks/rehearsal.md" and entry["steps"] == ["collect", "count", "report"]
    assert entry["record"]["status"] == "passed"
    [(path, digest)] = entry["record_file"].items()
    assert path == "evidence/_playbooks/playbooks/rehearsal/record.json" and len(str(digest)) >= 64


def test_the_compiled_manual_of_an_edition_shows_the_steps_and_their_standing(tmp_path: Path) -> None:
    import subprocess

    project = make_project(tmp_path)
    assert fmbuild(project, "verify", NOTE, "--record").returncode == 0
    git = ["git", "-C", str(project), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    done = fmbuild(project, "edition", "cut", "e1")
    assert done.returncode == 0, done.stdout + done.stderr
    manual = (project / "editions/e1/manual.html").read_text()
    assert 'Steps run: 3 <span class="state state-passing">passing</span>' in manual
    assert "<td><code>count</code></td><td>exit 0; output contains &#x27;siem&#x27;; JSON lines == alerts</td><td>passed</td>" in manual


def test_check_sees_a_record_go_stale_when_another_note_it_reads_changes(tmp_path: Path) -> None:
    """A command sheet's steps may read other notes; their edit must not hide behind the check's
    reuse of the sheet's own findings (the sheet itself is unchanged)."""
    import os
    import time

    project = make_project(tmp_path)
    other = project / "vault" / "playbooks" / "notes-read.md"
    other.write_text("---\ntitle: Notes read\nid: pb-002\ntags: [type/playbook]\nmaturity: draft\ncreated: 2026-12-01\n"
                     "updated: 2026-12-01\n---\n\n# Notes read\n\nOne line.\n")
    edit(project, "maturity: draft", "maturity: verified")
    edit(project, "%% step id=collect %%", "%% step id=notes %%\n```bash\nwc -l < vault/playbooks/notes-read.md\n```\n\n"
                                          "%% step id=collect %%")
    assert fmbuild(project, "verify", NOTE, "--record").returncode == 0

    stamp: list[float] = []

    def settled_check() -> int:
        # The check reuses findings only for files older than a couple of seconds: make them so,
        # with one fixed time, so that a file's identity changes only when its content does.
        past = time.time() - 3600 if not stamp else stamp[0]
        stamp[:] = [past]
        for folder, _dirs, files in os.walk(project):
            for name in files:
                os.utime(os.path.join(folder, name), (past, past))
        return fmbuild(project, "check").returncode

    assert settled_check() == 0
    assert settled_check() == 0  # now from the stored findings
    original = other.read_text()
    other.write_text(original.replace("One line.", "One line.\nAnd another."))
    assert settled_check() == 1, "the record is stale: the note its steps read changed"
    other.write_text(original)
    assert settled_check() == 0


def test_check_sees_a_file_outside_the_vault_that_steps_read_change(tmp_path: Path) -> None:
    """The same for a repository file outside the vault and the evidence folder."""
    import os

    project = make_project(tmp_path)
    outside = project / "data" / "inventory.txt"
    outside.parent.mkdir()
    outside.write_text("one\ntwo\n")
    edit(project, "maturity: draft", "maturity: verified")
    edit(project, "%% step id=collect %%", "%% step id=inventory %%\n```bash\nwc -l < data/inventory.txt\n```\n\n"
                                          "%% step id=collect %%")
    assert fmbuild(project, "verify", NOTE, "--record").returncode == 0
    past = 1_700_000_000

    def settled_check() -> int:
        for folder, _dirs, files in os.walk(project):
            for name in files:
                os.utime(os.path.join(folder, name), (past, past))
        return fmbuild(project, "check").returncode

    assert settled_check() == 0 and settled_check() == 0
    outside.write_text("one\ntwo\nthree\n")
    assert settled_check() == 1, "the record is stale: a file its steps read changed"
