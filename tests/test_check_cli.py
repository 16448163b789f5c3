"""`fmbuild check` end to end on the small vaults in tests/vaults/."""

from __future__ import annotations

import json
from pathlib import Path

PLAIN_EXPECTED = [
    # (line, column, code) in notes/links.md
    (5, 6, "link-broken"),  # property link
    (19, 8, "link-broken"),
    (19, 28, "link-broken"),
    (19, 50, "embed-missing"),
    (20, 11, "link-ambiguous"),
    (21, 13, "heading-missing"),
    (21, 50, "block-missing"),
    (22, 10, "path-escape"),
]


def test_plain_obsidian_vault_json(fmbuild, fixture_vault) -> None:
    vault = fixture_vault("core-plain")
    result = fmbuild("check", "--vault", str(vault), "--format", "json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert all(set(d) == {"path", "line", "column", "severity", "code", "message"} for d in found)
    assert {d["path"] for d in found} == {"notes/links.md"}
    assert [(d["line"], d["column"], d["code"]) for d in found] == PLAIN_EXPECTED
    messages = {d["code"]: d["message"] for d in found}
    assert "did you mean [[notes/Target Note]]?" in next(d["message"] for d in found if "Target Nite" in d["message"])
    assert "notes/sub/dup.md, other/dup.md" in messages["link-ambiguous"]
    assert "did you mean '#^para-1'?" in messages["block-missing"]


def test_text_output_is_clickable_from_the_current_folder(fmbuild, fixture_vault) -> None:
    vault = fixture_vault("core-plain")
    result = fmbuild("check", "--vault", "core-plain", cwd=vault.parent)
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("core-plain/notes/links.md:5:6: error[link-broken] [[missing-from-property]]")
    assert "8 error(s)" in result.stderr


def test_github_annotations(fmbuild, fixture_vault) -> None:
    vault = fixture_vault("core-plain")
    result = fmbuild("check", "--vault", str(vault), "--format", "github", cwd=vault)
    lines = result.stdout.splitlines()
    assert len(lines) == len(PLAIN_EXPECTED)
    assert lines[0].startswith("::error file=notes/links.md,line=5,col=6,title=link-broken::")


def test_templates_and_dot_folders_are_not_notes(fmbuild, fixture_vault) -> None:
    vault = fixture_vault("core-plain")
    result = fmbuild("check", "--vault", str(vault), "--format", "json")
    assert "template-link" not in result.stdout and "dot-folders" not in result.stdout


def test_clean_manual_passes_with_config(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    result = fmbuild("check", cwd=project)
    assert result.exit_code == 0, result.stdout
    assert result.stdout == ""
    assert "4 notes checked: 0 error(s)" in result.stderr


def test_vault_option_uses_the_config_that_names_that_vault(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    note = project / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text(encoding="utf-8").replace("chapter: 4", "chapter: 99"), encoding="utf-8")
    result = fmbuild("check", "--vault", str(project / "vault"), "--format", "json")
    assert [d["code"] for d in json.loads(result.stdout)] == ["field-invalid"]
    # The same folder outside any project is a plain Obsidian vault: schema rules do not apply.
    (project / "fmbuild.toml").unlink()
    result = fmbuild("check", "--vault", str(project / "vault"), "--format", "json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


def test_paths_limit_the_report(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    for rel in ("techniques/evasion.md", "patterns/input-smoothing.md"):
        note = project / "vault" / rel
        note.write_text(note.read_text(encoding="utf-8") + "\n[[nowhere]]\n", encoding="utf-8")
    result = fmbuild("check", "vault/patterns", "--format", "json", cwd=project)
    assert [d["path"] for d in json.loads(result.stdout)] == ["patterns/input-smoothing.md"]
    result = fmbuild("check", "--format", "json", cwd=project)
    assert len(json.loads(result.stdout)) == 2


def test_usage_errors_exit_2(fmbuild, fixture_vault, tmp_path: Path) -> None:
    result = fmbuild("check", "--vault", str(tmp_path / "missing"))
    assert result.exit_code == 2
    assert "error" in result.stderr and "Traceback" not in result.stderr
    result = fmbuild("check", "--format", "xml")
    assert result.exit_code == 2
    project = fixture_vault("core-manual")
    result = fmbuild("check", "no/such/path.md", cwd=project)
    assert result.exit_code == 2 and "no such file" in result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = fmbuild("check", str(elsewhere), cwd=project)
    assert result.exit_code == 2 and "not inside the vault" in result.stderr


def test_no_config_and_no_vault_option_exit_2(fmbuild, tmp_path: Path) -> None:
    result = fmbuild("check", cwd=tmp_path)
    assert result.exit_code == 2
    assert "no fmbuild.toml" in result.stderr and "--vault" in result.stderr


def test_config_error_names_the_key_and_exits_2(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    config = project / "fmbuild.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("max_file_bytes = 65536", "max_file_bytes = 'big'"))
    result = fmbuild("check", cwd=project)
    assert result.exit_code == 2
    assert "[vault].max_file_bytes" in result.stderr


def test_codes_listing(fmbuild) -> None:
    result = fmbuild("check", "--codes")
    assert result.exit_code == 0
    for code in (
        "link-broken", "link-ambiguous", "heading-missing", "block-missing", "embed-missing",
        "frontmatter-invalid", "field-missing", "field-invalid", "tag-unknown", "id-duplicate",
        "maturity-unearned", "framework-id-unknown", "unsafe-html", "path-escape", "encoding",
        "file-too-large",
    ):
        assert code in result.stdout


def test_parallel_parsing_and_checking_give_the_same_findings(fmbuild, fixture_vault, monkeypatch) -> None:
    """Large vaults parse and check in worker processes; the answer must not change."""
    import fmbuild.check.links as links_rule
    from fmbuild.vault import load as loading

    vault = fixture_vault("core-plain")
    serial = fmbuild("check", "--vault", str(vault), "--format", "json", "--no-cache").stdout
    monkeypatch.setattr(loading, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(links_rule, "PARALLEL_MIN", 1)
    monkeypatch.setattr(loading, "worker_count", lambda n, threshold=0: 2)
    monkeypatch.setattr(links_rule, "worker_count", lambda n, threshold=0: 2)
    parallel = fmbuild("check", "--vault", str(vault), "--format", "json", "--no-cache").stdout
    assert json.loads(parallel) == json.loads(serial) and json.loads(serial)


def test_a_folder_holding_the_vault_selects_everything(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    note = project / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text(encoding="utf-8") + "\n[[nowhere]]\n", encoding="utf-8")
    result = fmbuild("check", ".", "--format", "json", cwd=project)
    assert [d["path"] for d in json.loads(result.stdout)] == ["techniques/evasion.md"]
    result = fmbuild("check", "vault/techniques/evasion.md", "--format", "json", cwd=project)
    assert [d["path"] for d in json.loads(result.stdout)] == ["techniques/evasion.md"]
