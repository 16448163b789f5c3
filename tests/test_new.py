"""`fmbuild new`: every kind passes `check` as a draft straight away, nothing is overwritten,
bad requests are one-line refusals, and the Obsidian templates are the same skeletons."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fmbuild.cli import cli
from fmbuild.scaffold.templates import render_templates

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty manual with the real fmbuild.toml (its schema, chapters and vocabulary)."""
    root = tmp_path / "manual"
    for folder in ("techniques", "patterns", "playbooks", "sources"):
        (root / "vault" / folder).mkdir(parents=True)
    (root / "evidence").mkdir()
    shutil.copy(REPO / "fmbuild.toml", root / "fmbuild.toml")
    monkeypatch.chdir(root)
    return root


def new(*args: str) -> Result:
    return CliRunner().invoke(cli, ["new", *args], catch_exceptions=False)


def check() -> Result:
    return CliRunner().invoke(cli, ["check", "--no-cache"], catch_exceptions=False)


def frontmatter(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text().split("---\n")[1])


def test_every_kind_passes_check_as_a_draft(project: Path) -> None:
    assert new("technique", "Model extraction through the API", "--atlas", "AML.T0024", "--tag", "attack/extraction").exit_code == 0
    assert new("pattern", "Query rate limiting", "--mitigates", "model-extraction-through-the-api").exit_code == 0
    assert new("anti-pattern", "Unmetered inference API", "--enables", "techniques/model-extraction-through-the-api").exit_code == 0
    result = new("playbook", "Responding to extraction", "--covers", "model-extraction-through-the-api",
                 "--applies", "patterns/query-rate-limiting", "--chapter", "11")
    assert result.exit_code == 0, result.output
    done = check()
    assert done.exit_code == 0, done.output
    assert "0 error(s)" in done.output

    tech = project / "vault" / "techniques" / "model-extraction-through-the-api.md"
    fm = frontmatter(tech)
    assert fm["title"] == "Model extraction through the API" and fm["maturity"] == "draft"
    assert re.fullmatch(r"fm-[0-9a-f]{8}", fm["id"])
    assert str(fm["created"]) == str(fm["updated"]) and len(str(fm["created"])) == 10
    assert fm["tags"] == ["type/technique", "attack/extraction"] and fm["atlas"] == ["AML.T0024"] and fm["chapter"] == 4
    assert fm["evidence"]["module"] == "evidence/model-extraction-through-the-api"
    text = tech.read_text()
    assert "# confirm: the chapter" in text  # a default the author should confirm is marked
    for heading in ("## What it is", "## How it works", "## In the lab", "## What broke and why",
                    "## Detection and mitigation", "## References"):
        assert heading in text
    pattern = frontmatter(project / "vault" / "patterns" / "query-rate-limiting.md")
    assert pattern["mitigates"][0]["technique"] == "[[techniques/model-extraction-through-the-api]]"
    anti = frontmatter(project / "vault" / "patterns" / "unmetered-inference-api.md")
    assert anti["tags"] == ["type/anti-pattern"] and anti["enables"][0]["use"]
    play = frontmatter(project / "vault" / "playbooks" / "responding-to-extraction.md")
    assert play["chapter"] == 11 and "evidence" not in play and play["covers"] and play["applies"]
    result = new("reference", "Why a model is not its source code")
    assert result.exit_code == 0, result.output
    ref = project / "vault" / "reference" / "why-a-model-is-not-its-source-code.md"
    fm = frontmatter(ref)
    assert fm["tags"] == ["type/reference"] and fm["chapter"] == 1 and "evidence" not in fm
    assert "## What was measured" in ref.read_text()
    assert not (project / "evidence" / "why-a-model-is-not-its-source-code").exists()  # evidence is optional
    result = new("reference", "Backed", "--module", "nothing-here")
    assert result.exit_code == 2 and "--module nothing-here: no folder evidence/nothing-here" in result.output
    done = check()
    assert done.exit_code == 0 and "0 error(s)" in done.output, done.output
    ids = {frontmatter(p)["id"] for p in (project / "vault").rglob("*.md")}
    assert len(ids) == 5
    for name in ("model-extraction-through-the-api", "query-rate-limiting", "unmetered-inference-api"):
        assert sorted(p.name for p in (project / "evidence" / name).iterdir()) == ["README.md", "module.toml", "run.py"]


def test_the_module_skeleton_runs_and_writes_metrics(project: Path, tmp_path: Path) -> None:
    assert new("module", "probe-demo", "--title", 'A "quoted" \\ title').exit_code == 0
    out = tmp_path / "out"
    env = {**os.environ, "FMBUILD_OUT": str(out), "FMBUILD_SEED": "0", "FMBUILD_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, str(project / "evidence" / "probe-demo" / "run.py")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text()) == {"scaffold": True}
    import tomllib

    assert tomllib.loads((project / "evidence" / "probe-demo" / "module.toml").read_text())["title"] == 'A "quoted" \\ title'


def test_nothing_is_overwritten(project: Path) -> None:
    assert new("technique", "Evasion", "--atlas", "AML.T0015").exit_code == 0
    note = project / "vault" / "techniques" / "evasion.md"
    run_py = project / "evidence" / "evasion" / "run.py"
    note.write_text(note.read_text() + "\nMy own words.\n")
    run_py.write_text(run_py.read_text() + "# my experiment\n")
    before = {p: p.read_bytes() for p in (note, run_py)}
    again = new("technique", "Evasion", "--atlas", "AML.T0015")
    assert again.exit_code == 2 and "vault/techniques/evasion.md: exists; nothing is overwritten" in again.output
    module_clash = new("pattern", "Evasion", "--mitigates", "evasion")
    assert module_clash.exit_code == 2 and "evidence/evasion exists: pass --module evasion" in module_clash.output
    assert not (project / "vault" / "patterns" / "evasion.md").exists()
    assert new("module", "evasion").exit_code == 2
    assert {p: p.read_bytes() for p in before} == before
    reuse = new("pattern", "Evasion", "--mitigates", "evasion", "--module", "evasion")
    assert reuse.exit_code == 0 and frontmatter(project / "vault" / "patterns" / "evasion.md")["evidence"]["module"] == "evidence/evasion"
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize(("args", "message"), [
    (["technique", "X", "--atlas", "AML.T9999"], "--atlas AML.T9999: not a MITRE ATLAS technique ID"),
    (["technique", "X", "--atlas", "AML.M0015"], "not a MITRE ATLAS technique ID"),
    (["technique", "X"], "a technique names its MITRE ATLAS technique: --atlas AML.T0043"),
    (["pattern", "X"], "a pattern names the techniques it mitigates: --mitigates techniques/NAME"),
    (["anti-pattern", "X"], "an anti-pattern names the techniques it enables: --enables techniques/NAME"),
    (["pattern", "X", "--mitigates", "techniques/nothing"], "--mitigates techniques/nothing: no such note"),
    (["playbook", "X", "--chapter", "15"], "--chapter 15: not a chapter of the manual (1–14)"),
    (["playbook", "X", "--tag", "target/nothing"], "--tag target/nothing: not in the vocabulary"),
    (["playbook", "X", "--tag", "type/pattern"], "the type tag comes from the kind of note"),
    (["playbook", "  "], "the title must be one non-empty line"),
    (["playbook", "???"], "gives no file name"),
    (["technique", "X", "--atlas", "AML.T0015", "--module", "absent"], "--module absent: no folder evidence/absent"),
    (["module", "Not_A_Name"], "is not a module name"),
])
def test_bad_requests_are_refused_in_one_line(project: Path, args: list[str], message: str) -> None:
    result = new(*args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not any((project / "vault").rglob("*.md")) and not any((project / "evidence").iterdir())


def test_missing_links_are_asked_for_at_a_terminal(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fmbuild.commands import new as new_command

    monkeypatch.setattr(new_command, "_interactive", lambda: True)
    asked = CliRunner().invoke(cli, ["new", "technique", "Asked evasion"], input="AML.T0015\n", catch_exceptions=False)
    assert asked.exit_code == 0, asked.output
    assert "MITRE ATLAS technique ID" in asked.output
    assert frontmatter(project / "vault" / "techniques" / "asked-evasion.md")["atlas"] == ["AML.T0015"]
    control = CliRunner().invoke(cli, ["new", "pattern", "Asked control"], input="asked-evasion\n", catch_exceptions=False)
    assert control.exit_code == 0, control.output
    assert check().exit_code == 0


def test_a_control_must_point_at_a_technique(project: Path) -> None:
    assert new("playbook", "Existing playbook").exit_code == 0
    result = new("pattern", "X", "--mitigates", "playbooks/existing-playbook")
    assert result.exit_code == 2 and "is a playbook, not a technique" in result.output


def test_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = new("module", "x")
    assert result.exit_code == 2 and "no fmbuild.toml" in result.output


# --- the Obsidian templates ---------------------------------------------------------------------


def test_committed_templates_are_the_scaffold_skeletons() -> None:
    folder = REPO / "vault" / "templates"
    for name, text in render_templates().items():
        committed = (folder / name).read_text(encoding="utf-8")
        assert committed == text, f"vault/templates/{name} is out of date: python -m fmbuild.scaffold.templates vault/templates"
        assert "{{title}}" in committed and "{{date:YYYY-MM-DD}}" in committed


def test_obsidian_settings_point_at_the_templates() -> None:
    settings = json.loads((REPO / "vault" / ".obsidian" / "templates.json").read_text())
    import tomllib

    config = tomllib.loads((REPO / "fmbuild.toml").read_text())
    assert settings["folder"] == config["vault"]["templates"] and settings["dateFormat"] == "YYYY-MM-DD"
    assert "templates" in json.loads((REPO / "vault" / ".obsidian" / "core-plugins.json").read_text())
    app = json.loads((REPO / "vault" / ".obsidian" / "app.json").read_text())
    assert app["useMarkdownLinks"] is False and app["newLinkFormat"] == "absolute"


def obsidian_fill(text: str, title: str, second: int) -> str:
    """What Obsidian's core Templates plugin does with the placeholders we use."""
    return (text.replace("{{title}}", title).replace("{{date:YYYY-MM-DD}}", "2026-11-21")
            .replace("{{date:YYYYMMDDHHmmss}}", f"202611211015{second:02d}"))


def test_a_filled_in_template_passes_check_and_an_unfilled_one_is_named(project: Path) -> None:
    templates = render_templates()
    assert new("module", "evasion-demo").exit_code == 0
    tech = obsidian_fill(templates["technique.md"], "Evasion demo", 1)
    (project / "vault" / "techniques" / "evasion-demo.md").write_text(tech)
    unfilled = check()
    assert unfilled.exit_code == 1
    assert "vault/techniques/evasion-demo.md" in unfilled.output
    assert "atlas: 'CHANGE-ME'" in unfilled.output and "evidence/CHANGE-ME" in unfilled.output
    filled = tech.replace("CHANGE-ME  # the MITRE ATLAS technique ID, e.g. AML.T0043", "AML.T0015")
    filled = filled.replace("evidence/CHANGE-ME", "evidence/evasion-demo")
    (project / "vault" / "techniques" / "evasion-demo.md").write_text(filled)
    play = obsidian_fill(templates["playbook.md"], "Triage demo", 2)
    (project / "vault" / "playbooks" / "triage-demo.md").write_text(play)
    done = check()
    assert done.exit_code == 0, done.output
