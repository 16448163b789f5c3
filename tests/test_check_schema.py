"""Schema, tag, id, framework-ID and security rules (they need fmbuild.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TECHNIQUE = """\
---
title: A technique
id: fm-0100
tags:
  - type/technique
  - target/llm
maturity: draft
created: 2026-02-01
updated: 2026-02-02
chapter: 1
atlas: [AML.T0043]
---
# A technique
"""


# Codes of the evidence and graph rules (tested with those rules): left out here.
OTHER_RULES = {"control-missing", "edge-invalid", "edge-deprecated", "evidence-invalid", "evidence-stale",
               "metric-unknown", "claim-invalid", "maturity-unearned"}


def check(fmbuild, project: Path) -> list[tuple[str, int, int, str, str]]:
    result = fmbuild("check", "--format", "json", "--no-cache", cwd=project)
    assert "Traceback" not in result.stderr
    return [
        (d["path"], d["line"], d["column"], d["code"], d["message"])
        for d in json.loads(result.stdout)
        if d["code"] not in OTHER_RULES
    ]


def with_note(fixture_vault, rel: str, text: str) -> Path:
    project = fixture_vault("core-manual")
    path = project / "vault" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return project


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def codes(found) -> list[tuple[int, str]]:
    return [(line, code) for _, line, _, code, _ in found]


def test_the_template_technique_is_clean(fmbuild, fixture_vault) -> None:
    assert check(fmbuild, with_note(fixture_vault, "techniques/t.md", TECHNIQUE)) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("chapter: 1\n", "", [(1, "field-missing")]),
        ("id: fm-0100\n", "", [(1, "field-missing")]),
        ("title: A technique", "title:", [(2, "field-missing")]),
        ("title: A technique", "title: 42", [(2, "field-invalid")]),
        ("id: fm-0100", "id: 100", [(3, "field-invalid")]),
        ("chapter: 1", "chapter: 15", [(10, "field-invalid")]),
        ("chapter: 1", "chapter: 3", [(10, "field-invalid")]),  # not a chapter of this manual
        ("chapter: 1", "chapter: one", [(10, "field-invalid")]),
        ("maturity: draft", "maturity: drafted", [(7, "field-invalid")]),
        ("created: 2026-02-01", "created: 2026-13-01", [(8, "field-invalid")]),
        ("created: 2026-02-01", "created: yesterday", [(8, "field-invalid")]),
        ("updated: 2026-02-02", "updated: 2026-01-02", [(9, "field-invalid")]),
        ("  - target/llm", "  - target/lm", [(6, "tag-unknown")]),
        ("  - type/technique\n", "", [(4, "field-missing")]),
        ("type/technique", "type/techniqe", [(5, "tag-unknown"), (4, "field-invalid")]),
    ],
)
def test_field_errors(fmbuild, fixture_vault, old: str, new: str, expected) -> None:
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", edit(TECHNIQUE, old, new)))
    assert sorted(codes(found)) == sorted(expected), found


def test_messages_say_how_to_fix(fmbuild, fixture_vault) -> None:
    text = edit(edit(TECHNIQUE, "maturity: draft", "maturity: reviewd"), "  - target/llm", "  - llm")
    found = {code: msg for _, _, _, code, msg in check(fmbuild, with_note(fixture_vault, "techniques/t.md", text))}
    assert "did you mean 'reviewed'?" in found["field-invalid"]
    assert "did you mean 'target/llm'?" in found["tag-unknown"]


def test_missing_field_message_lists_what_the_type_needs(fmbuild, fixture_vault) -> None:
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", edit(TECHNIQUE, "atlas: [AML.T0043]\n", "")))
    ((_, line, col, code, message),) = found
    assert (line, col, code) == (1, 1, "field-missing")
    assert "missing required field 'atlas'" in message and "technique notes need" in message


def test_inline_tags_come_from_the_vocabulary_too(fmbuild, fixture_vault) -> None:
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", TECHNIQUE + "\nText #attack/evasion and #made-up.\n"))
    assert [(l, c, code) for _, l, c, code, _ in found] == [(15, 26, "tag-unknown")]


def test_folder_must_match_the_type(fmbuild, fixture_vault) -> None:
    found = check(fmbuild, with_note(fixture_vault, "patterns/t.md", TECHNIQUE))
    assert codes(found) == [(4, "field-invalid")]
    assert "belongs in techniques/" in found[0][4]


def test_duplicate_ids_are_reported_on_every_holder(fmbuild, fixture_vault) -> None:
    project = with_note(fixture_vault, "techniques/t.md", edit(TECHNIQUE, "fm-0100", "fm-0001"))
    found = check(fmbuild, project)
    assert sorted((p, l, code) for p, l, _, code, _ in found) == [
        ("techniques/evasion.md", 3, "id-duplicate"), ("techniques/t.md", 3, "id-duplicate"),
    ]
    assert "techniques/evasion.md" in next(m for p, *_, m in found if p == "techniques/t.md")


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("successor: \"[[techniques/evasion]]\"\n", []),
        ("deprecated_reason: merged into evasion\n", []),
        ("", [(7, "field-missing")]),
        ("successor: techniques/evasion\n", [(12, "field-invalid")]),
        ("successor: \"[[techniques/nowhere]]\"\n", [(12, "link-broken")]),
    ],
)
def test_deprecated_notes_name_a_successor_or_a_reason(fmbuild, fixture_vault, extra: str, expected) -> None:
    text = edit(TECHNIQUE, "maturity: draft\n", "maturity: deprecated\n").replace("---\n# A", extra + "---\n# A")
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", text))
    assert codes(found) == expected, found


# --- framework IDs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, expected_code, fragment",
    [
        ("atlas: [AML.T9999]", "framework-id-unknown", "AML.T9999 is not in MITRE ATLAS"),
        ("atlas: [AML.T43]", "field-invalid", "not a well-formed ID"),
        ("atlas: [aml.t0043]", "field-invalid", "in capitals"),
        ("atlas: [AML.M0014]", "field-invalid", "list it under atlas_mitigations"),
        ("atlas: [LLM01]", "field-invalid", "another framework"),
        ("atlas: AML.T0043\nowasp_llm: [LLM11]", "field-invalid", "not a well-formed ID"),
        ("atlas: AML.T0043\nowasp_ml: [ML11]", "field-invalid", "not a well-formed ID"),
        ("atlas: AML.T0043\natlas_mitigations: [AML.M9999]", "framework-id-unknown", "AML.M9999 is not in MITRE ATLAS"),
        ("atlas: {id: AML.T0043}", "field-invalid", "expected an ID or a list"),
    ],
)
def test_framework_ids(fmbuild, fixture_vault, field: str, expected_code: str, fragment: str) -> None:
    text = edit(TECHNIQUE, "atlas: [AML.T0043]", field)
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", text))
    assert [code for *_, code, _ in found] == [expected_code], found
    assert fragment in found[0][4]


def test_unknown_framework_id_names_the_list_version(fmbuild, fixture_vault) -> None:
    from fmbuild import frameworks

    text = edit(TECHNIQUE, "atlas: [AML.T0043]", "atlas: [AML.T0043, AML.T0044.999]")
    ((_, line, _, code, message),) = check(fmbuild, with_note(fixture_vault, "techniques/t.md", text))
    assert (line, code) == (11, "framework-id-unknown")
    assert f"MITRE ATLAS {frameworks.versions()['atlas']}" in message


def test_valid_owasp_ids_with_year(fmbuild, fixture_vault) -> None:
    text = edit(TECHNIQUE, "atlas: [AML.T0043]", "atlas: [AML.T0043.000]\nowasp_llm: [LLM01, 'LLM10:2025']\nowasp_ml: ML05")
    assert check(fmbuild, with_note(fixture_vault, "techniques/t.md", text)) == []


# --- security lint ---------------------------------------------------------------------------------


def test_unsafe_html_is_an_error_outside_code(fmbuild, fixture_vault) -> None:
    body = (
        "\nSafe: `<script>x</script>` and\n\n```html\n<iframe src=x></iframe>\n```\n\n"
        "<script src=\"https://evil.example/x.js\"></script>\n"
        "<img src=x onerror=alert(1)>\n"
        "[click](javascript:alert(document.cookie))\n"
        "<iframe src=\"https://example.org\"></iframe>\n"
    )
    found = check(fmbuild, with_note(fixture_vault, "techniques/t.md", TECHNIQUE + body))
    assert [(l, c, code) for _, l, c, code, _ in found] == [
        (21, 1, "unsafe-html"), (22, 1, "unsafe-html"), (23, 1, "unsafe-html"), (24, 1, "unsafe-html"),
    ]
    assert "show it as code" in found[0][4]


def test_plain_vault_gets_structural_checks_only(fmbuild, write_files) -> None:
    vault = write_files({"n.md": "---\nmaturity: whatever\ntags: [anything/goes]\n---\n<script>x</script> [[gone]]\n"})
    result = fmbuild("check", "--vault", str(vault), "--format", "json", "--no-cache")
    assert [d["code"] for d in json.loads(result.stdout)] == ["link-broken"]


def test_both_owasp_llm_editions_are_cited_unambiguously(fmbuild, fixture_vault) -> None:
    """2026 renumbered the list: its IDs keep their year, a bare ID is the 2025 edition."""
    text = edit(TECHNIQUE, "atlas: [AML.T0043]",
                "atlas: [AML.T0043]\nowasp_llm: [LLM06, LLM03:2026, 'LLM08:2026']")
    project = with_note(fixture_vault, "techniques/t.md", text)
    assert check(fmbuild, project) == []
    for ids, fragment in (("[LLM05:2024]", "owasp_llm: LLM05:2024 is not in OWASP Top 10 for LLM Applications 2025 or 2026"),
                          ("[llm03:2026]", "write 'llm03:2026' in capitals: LLM03:2026")):
        text = edit(TECHNIQUE, "atlas: [AML.T0043]", f"atlas: [AML.T0043]\nowasp_llm: {ids}")
        (project / "vault" / "techniques" / "t.md").write_text(text, encoding="utf-8")
        found = check(fmbuild, project)
        assert len(found) == 1 and fragment in found[0][4], found
