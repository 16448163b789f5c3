"""Log excerpts (`{{log:EVENT}}`) and plots (`![[records/<module>/<plot>.png]]`) by reference:
parsing, check's exact diagnostics, and rendering on the site and in the Edition manual."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fmbuild.config import load_config
from fmbuild.vault.load import load_vault
from fmbuild.vault.parse import parse_note
from test_evidence_support import fmbuild, make_project

NOTE = "---\ntitle: t\n---\n\n"


def refs(body: str) -> list[tuple[str | None, str, int, str]]:
    note = parse_note("n.md", NOTE + body)
    return [(r.module, r.event, r.count, r.problem) for r in note.log_refs]


def test_the_three_forms_parse() -> None:
    assert refs("{{log:attack.result}}\n\n{{log:attack.result:3}}\n\n{{log:evasion-fgsm/attack.result}}\n"
                "\n  {{ log:evidence/other/run.start:2 }}  \n") == [
        (None, "attack.result", 1, ""), (None, "attack.result", 3, ""),
        ("evasion-fgsm", "attack.result", 1, ""), ("other", "run.start", 2, ""),
    ]


def test_position_and_raw_text() -> None:
    note = parse_note("n.md", NOTE + "text\n\n{{log:a.b}}\n")
    ref = note.log_refs[0]
    assert (ref.line, ref.column, ref.raw) == (7, 1, "{{log:a.b}}")


@pytest.mark.parametrize(("body", "problem"), [
    ("See {{log:a.b}} here.", "a log excerpt stands alone on its own line (it renders as a code block)"),
    ("{{log:a.b:0}}", "'0' is not a number of lines (write {{log:EVENT:3}} for the first three)"),
    ("{{log:a.b:many}}", "'many' is not a number of lines (write {{log:EVENT:3}} for the first three)"),
    ("{{log:}}", "'' is not an event name (letters, digits, '_', '.', '-')"),
    ("{{log:a b}}", "'a b' is not an event name (letters, digits, '_', '.', '-')"),
])
def test_malformed_references_carry_the_problem(body: str, problem: str) -> None:
    assert [r[3] for r in refs(body + "\n")] == [problem]


def test_code_is_not_a_reference() -> None:
    assert refs("```\n{{log:a.b}}\n```\n\n`{{log:c.d}}`\n") == []


def test_log_refs_survive_the_parse_cache(tmp_path: Path) -> None:
    project = make_project(tmp_path, "ev-seeds")
    config = load_config(project / "fmbuild.toml")
    first = load_vault(config.vault_path, config)
    cached = load_vault(config.vault_path, config)
    assert [r.event for r in cached.notes["techniques/seeded.md"].log_refs] == \
        [r.event for r in first.notes["techniques/seeded.md"].log_refs] == ["score.measured", "score.measured", "html.probe"]


# --- with a record ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("logrefs"), "ev-seeds")
    done = fmbuild(project, "verify", "ev-seeded", "--record")
    assert done.returncode == 0, done.stderr + done.stdout
    return project


def _check(project: Path) -> list[dict]:
    done = fmbuild(project, "check", "--format", "json", "--no-cache")
    return [d for d in json.loads(done.stdout) if d["code"] in ("log-unknown", "plot-unknown")]


def test_check_is_quiet_on_references_the_record_has(recorded: Path) -> None:
    assert _check(recorded) == []


def test_check_reports_what_the_record_lacks(recorded: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(recorded, project, ignore=shutil.ignore_patterns(".fmbuild"))
    note = project / "vault" / "techniques" / "flaky.md"
    note.write_text(note.read_text() + "\n{{log:nothing.here}}\n\n{{log:ev-seeded/nothing.here}}\n\n"
                    "{{log:ev-seeded/score.measured:5}}\n\n{{log:no-such/x}}\n\nInline {{log:ev-seeded/score.measured}}.\n\n"
                    "![[records/ev-seeded/missing.png]]\n\n![[records/no-such/x.png]]\n\n![[records/ev-flaky/x.png]]\n")
    found = [(d["line"], d["severity"], d["message"]) for d in _check(project) if d["path"] == "techniques/flaky.md"]
    assert found == [
        (20, "warning", "{{log:nothing.here}}: ev-flaky has no committed record yet, so the page cannot show this "
                        "excerpt (run: fmbuild verify --record ev-flaky)"),
        (22, "error", "{{log:ev-seeded/nothing.here}}: the record of ev-seeded has no log line with event "
                      "'nothing.here' (it has: html.probe, run.finish, run.start, score.measured)"),
        (24, "error", "{{log:ev-seeded/score.measured:5}}: the record of ev-seeded has 2 log lines with event "
                      "'score.measured', not 5"),
        (26, "error", "{{log:no-such/x}}: no evidence module named 'no-such'"),
        (28, "error", "{{log:ev-seeded/score.measured}}: a log excerpt stands alone on its own line (it renders as a code block)"),
        (30, "error", "![[records/ev-seeded/missing.png]]: the record of ev-seeded has no plot 'missing.png' (it has: score.png)"),
        (32, "error", "![[records/no-such/x.png]]: no evidence module named 'no-such'"),
        (34, "warning", "![[records/ev-flaky/x.png]]: ev-flaky has no committed record yet "
                        "(run: fmbuild verify --record ev-flaky)"),
    ]


def test_check_reports_a_recorded_plot_not_yet_copied_into_the_vault(recorded: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(recorded, project, ignore=shutil.ignore_patterns(".fmbuild"))
    (project / "vault" / "records" / "ev-seeded" / "score.png").unlink()
    found = [d["message"] for d in _check(project)]
    assert found == ["![[records/ev-seeded/score.png]]: the record of ev-seeded has score.png but the vault has no "
                     "copy yet (run: fmbuild verify --record ev-seeded)"]


def test_site_renders_recorded_lines_escaped_and_the_plot(recorded: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(recorded, project, ignore=shutil.ignore_patterns(".fmbuild"))
    done = fmbuild(project, "build", "-q", "-o", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr + done.stdout
    page = (tmp_path / "site" / "techniques" / "seeded" / "index.html").read_text()
    log = (project / "evidence" / "ev-seeded" / "record" / "log.txt").read_text().splitlines()
    first = next(line for line in log if '"score.measured"' in line)
    assert first.replace('"', "&quot;") in page or first in page
    prose = page.split('<details class="fm-log">')[0]  # the evidence panel's own log excerpt comes after
    assert prose.count('"second": true') + prose.count("&quot;second&quot;: true") == 1  # {{log:...:2}} only
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<img alt="score.png" src="../../records/ev-seeded/score.png"' in page
    assert (tmp_path / "site" / "records" / "ev-seeded" / "score.png").read_bytes() == \
        (project / "vault" / "records" / "ev-seeded" / "score.png").read_bytes()
    assert '<td class="fm-range">0.9–0.94</td><td class="fm-margin">+0.01</td>' in page


def test_manual_renders_recorded_lines_and_inlines_the_plot(recorded: Path) -> None:
    from fmbuild.editions.manual import ManualCompiler
    from fmbuild.vault.resolve import Resolver

    config = load_config(recorded / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    compiler = ManualCompiler(config, vault, Resolver(vault), {})
    note = vault.notes["techniques/seeded.md"]
    body = compiler.note_html(note)
    assert body.count('<pre class="log"><code>') == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>" not in body
    assert '<img src="data:image/png;base64,' in body
    evidence = compiler._evidence(note)
    assert "<td>0.9–0.94</td><td>+0.01</td><td>met</td>" in evidence
    assert "seeds 0, 1, 2 (values in the text: seed 0)" in evidence
