"""Duplicate frontmatter keys: PyYAML keeps the last value silently; `check` says so."""

from __future__ import annotations

from fmbuild.vault.frontmatter import load_yaml_checked
from fmbuild.vault.parse import parse_note

NOTE = """---
title: Evasion
evidence:
  module: evidence/evasion-pgd
  claims:
    pgd.accuracy: "<= 0.30"
    clean_accuracy: ">= 0.95"
    pgd.accuracy: "<= 0.10"
maturity: draft
---
# Evasion
"""


def test_a_duplicated_claim_is_reported_at_its_second_line() -> None:
    note = parse_note("techniques/evasion.md", NOTE)
    assert [p.text() for p in note.problems] == [
        (
            "techniques/evasion.md:8:5: error[frontmatter-invalid] duplicate key 'pgd.accuracy' "
            "(first at line 6); YAML keeps only the last value"
        )
    ]
    # the fields are still read (the last value won), so the other rules can check them
    assert note.frontmatter["evidence"]["claims"]["pgd.accuracy"] == "<= 0.10"


def test_duplicates_at_the_top_level_and_in_lists_of_mappings() -> None:
    text = "a: 1\nitems:\n  - x: 1\n    x: 2\n  - x: 3\nb: 2\na: 3\n"
    data, duplicates = load_yaml_checked(text)
    assert data == {"a": 3, "items": [{"x": 2}, {"x": 3}], "b": 2}
    assert [(d.key, d.line, d.first_line) for d in duplicates] == [("x", 3, 2), ("a", 6, 0)]


def test_keys_equal_as_values_are_duplicates_and_merge_overrides_are_not() -> None:
    _data, duplicates = load_yaml_checked("1: a\n'1': b\n0x1: c\n")
    assert [d.key for d in duplicates] == ["1"]  # 1 and 0x1 are the same integer; '1' is text
    text = "base: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  a: 5\n"
    data, duplicates = load_yaml_checked(text)
    assert data["derived"] == {"a": 5, "b": 2} and duplicates == []


def test_a_note_without_duplicates_has_no_problem() -> None:
    assert parse_note("a.md", NOTE.replace('    pgd.accuracy: "<= 0.10"\n', "")).problems == []


def test_schema_rules_still_check_a_note_with_a_duplicate(tmp_path) -> None:
    from fmbuild.check import run_checks
    from fmbuild.vault.load import load_vault

    (tmp_path / "a.md").write_text("---\ntags: [x]\ntags: [y]\nid: 1\nid: 2\n---\n[[missing]]\n", encoding="utf-8")
    vault = load_vault(tmp_path, None, use_cache=False)
    codes = sorted((d.line, d.code) for d in run_checks(vault, None))
    assert codes == [(3, "frontmatter-invalid"), (5, "frontmatter-invalid"), (7, "link-broken")]
