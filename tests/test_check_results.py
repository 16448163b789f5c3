"""Whole-run reuse: a check whose inputs are all unchanged prints the stored findings without
running a rule; any input that changes (a note, the evidence folder, a declared input outside
it, fmbuild.toml) makes a full run."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from fmbuild import check
from fmbuild.check import results, run_checks
from fmbuild.vault.load import load_project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gen_vault import generate_vault


def _age(root: Path) -> None:
    """Date every file a minute back: fresher files are (rightly) not trusted by identity."""
    past = time.time() - 60
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (past, past))


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    generate_vault(tmp_path / "p", 60, seed=1, lifecycle=True)
    root = tmp_path / "p"
    (root / "data").mkdir()
    (root / "data" / "table.csv").write_text("1\n", encoding="utf-8")
    (root / "evidence" / "mod-00" / "module.toml").write_text('inputs = ["data/table.csv"]\n', encoding="utf-8")
    _age(root)
    return root


def _check(root: Path, selected: set[str] | None = None) -> list:
    config, vault = load_project(root)
    return run_checks(vault, config, selected=selected)


def _rules_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("a rule ran although nothing changed")

    monkeypatch.setattr(check, "load_rules", fail)


def test_an_unchanged_vault_reuses_the_whole_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _check(project)
    assert first and (project / ".fmbuild" / results.RESULTS_FILE).is_file()
    with monkeypatch.context() as m:
        _rules_must_not_run(m)
        assert _check(project) == first
        chosen = {first[0].path}
        assert _check(project, chosen) == [d for d in first if d.path in chosen]


@pytest.mark.parametrize("change", ["note", "module file", "declared input", "record", "config"])
def test_any_changed_input_makes_a_full_run(project: Path, change: str) -> None:
    before = _check(project)
    config, vault = load_project(project)
    key = results.run_key(vault, config)
    target = {
        "note": min((project / "vault" / "techniques").glob("*.md")),
        "module file": project / "evidence" / "mod-00" / "run.py",
        "declared input": project / "data" / "table.csv",
        "record": project / "evidence" / "mod-00" / "record" / "record.json",
        "config": project / "fmbuild.toml",
    }[change]
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(old + ("\n# edited\n" if change != "config" else '\n[site]\nname = "Other"\n'), encoding="utf-8")
    _age(project)
    config, vault = load_project(project)
    assert results.run_key(vault, config) not in (None, key)
    assert isinstance(_check(project), list) and before


def test_a_file_changed_just_now_is_not_trusted_by_identity(project: Path) -> None:
    (project / "evidence" / "mod-01" / "run.py").write_text("print('fresh')\n", encoding="utf-8")
    config, vault = load_project(project)
    assert results.run_key(vault, config) is None  # no reuse: it could change again unseen
    assert _check(project)  # and the run simply happens


def test_one_changed_note_alone_goes_through_the_local_rules(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _check(project)
    note = sorted((project / "vault" / "patterns").glob("*.md"))[3]
    text = note.read_text(encoding="utf-8")
    # notes are known by content, so a fresh edit is trusted (nothing else was touched)
    note.write_text(text.replace("  - type/pattern\n", "  - type/pattern\n  - target/llmm\n"), encoding="utf-8")

    from fmbuild.check import schema

    seen: list[str] = []
    real = schema._values
    monkeypatch.setattr(schema, "_values", lambda n, c: seen.append(n.path) or real(n, c))
    found = _check(project)
    assert seen == [note.relative_to(project / "vault").as_posix()]  # the others kept theirs

    config, vault = load_project(project, use_cache=False)  # no caches at all: the truth
    assert sorted(found, key=lambda d: d.sort_key()) == sorted(run_checks(vault, config), key=lambda d: d.sort_key())
    assert any(d.code == "tag-unknown" and d.path == seen[0] for d in found)
