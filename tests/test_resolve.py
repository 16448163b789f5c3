"""Link resolution with Obsidian's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmbuild.vault.load import load_vault
from fmbuild.vault.model import Heading, Note
from fmbuild.vault.parse import parse_note
from fmbuild.vault.resolve import Resolver, canonical_heading, heading_matches

FILES = {
    "techniques/Evasion Attack.md": "# Evasion Attack\n\n## Step 1: Prepare the data!\n\ntext ^para-1\n\n## Results & Findings\n\n### Nested Detail\n\n## Café déjà vu\n",
    "techniques/poisoning.md": "# Poisoning\n",
    "patterns/smoothing.md": "# Smoothing\n",
    "patterns/dup.md": "# dup A\n",
    "playbooks/dup.md": "# dup B\n",
    "playbooks/sub/dup.md": "# dup C\n",
    "playbooks/runbook.md": "# Runbook\n",
    "notes.v2.md": "# dotted name\n",
    "attachments/Diagram.PNG": b"png",
    "attachments/paper.pdf": b"pdf",
}


@pytest.fixture
def resolver(write_files) -> Resolver:
    root = write_files(FILES)
    return Resolver(load_vault(root, None, use_cache=False))


def resolve(resolver: Resolver, target: str, source: str = "playbooks/runbook.md"):
    return resolver.resolve_target(target, source)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("Evasion Attack", "techniques/Evasion Attack.md"),
        ("evasion attack", "techniques/Evasion Attack.md"),  # case-insensitive
        ("EVASION ATTACK.md", "techniques/Evasion Attack.md"),  # .md optional
        ("techniques/evasion attack", "techniques/Evasion Attack.md"),  # from the root
        ("/techniques/Evasion Attack", "techniques/Evasion Attack.md"),
        ("../techniques/poisoning", "techniques/poisoning.md"),  # relative to playbooks/
        ("./runbook", "playbooks/runbook.md"),
        ("sub/dup", "playbooks/sub/dup.md"),  # relative without ./, tried after the root
        ("notes.v2", "notes.v2.md"),  # a dot in a note name
        ("diagram.png", "attachments/Diagram.PNG"),
        ("attachments/paper.pdf", "attachments/paper.pdf"),
    ],
)
def test_resolves(resolver: Resolver, target: str, expected: str) -> None:
    res = resolve(resolver, target)
    assert (res.status, res.path) == ("ok", expected)
    assert res.is_note == expected.endswith(".md")


def test_bare_name_in_several_folders_is_ambiguous_with_every_candidate(resolver: Resolver) -> None:
    res = resolve(resolver, "dup", source="techniques/poisoning.md")
    assert res.status == "ambiguous" and res.path is None
    assert res.candidates == ["patterns/dup.md", "playbooks/dup.md", "playbooks/sub/dup.md"]


def test_bare_name_resolves_to_the_one_in_the_linking_notes_folder(resolver: Resolver) -> None:
    assert resolve(resolver, "dup", source="playbooks/runbook.md").path == "playbooks/dup.md"
    assert resolve(resolver, "dup", source="patterns/smoothing.md").path == "patterns/dup.md"


def test_partial_path_matches_by_suffix(resolver: Resolver) -> None:
    assert resolve(resolver, "sub/dup", source="techniques/poisoning.md").path == "playbooks/sub/dup.md"


def test_broken_target_suggests_the_closest(resolver: Resolver) -> None:
    res = resolve(resolver, "Evasion Atack")
    assert res.status == "broken" and res.path is None
    assert res.suggestion == "techniques/Evasion Attack"
    res = resolve(resolver, "techniques/poisonning")
    assert res.suggestion == "techniques/poisoning"
    assert resolve(resolver, "completely-unrelated-xyz").suggestion is None
    assert resolve(resolver, "diagram.jpg").suggestion == "attachments/Diagram.PNG"


def test_rooted_path_is_not_tried_relative_or_by_name(resolver: Resolver) -> None:
    assert resolve(resolver, "/poisoning").status == "broken"
    assert resolve(resolver, "./poisoning").status == "broken"


def test_relative_path_out_of_the_vault_escapes(resolver: Resolver) -> None:
    res = resolve(resolver, "../../etc/passwd")
    assert res.status == "broken" and res.escapes


def test_same_note_link(resolver: Resolver) -> None:
    res = resolve(resolver, "", source="playbooks/runbook.md")
    assert (res.status, res.path, res.is_note) == ("ok", "playbooks/runbook.md", True)


def _link(resolver: Resolver, text: str, source: str = "playbooks/runbook.md"):
    note = resolver.vault.notes[source]
    (link,) = parse_note(source, text).links
    return resolver.resolve_link(link, note)


@pytest.mark.parametrize(
    "text",
    [
        "[[Evasion Attack#Step 1: Prepare the data!]]",
        "[[Evasion Attack#Step 1 Prepare the data]]",  # punctuation dropped, as Obsidian's links write it
        "[[Evasion Attack#step 1   prepare THE data]]",
        "[[Evasion Attack#Results & Findings]]",
        "[[Evasion Attack#Results  Findings]]",
        "[[Evasion Attack#Results & Findings#Nested Detail]]",
        "[[Evasion Attack#Café déjà vu]]",
        "[x](../techniques/Evasion%20Attack.md#Results%20&%20Findings)",
    ],
)
def test_headings_match_as_obsidian_matches_them(resolver: Resolver, text: str) -> None:
    res = _link(resolver, text)
    assert res.status == "ok" and res.heading_ok is True and res.heading is not None


@pytest.mark.parametrize(
    "text", ["[[Evasion Attack#Step 2]]", "[[Evasion Attack#Nested Detail#Results & Findings]]", "[[Evasion Attack#Cafe deja vu]]"]
)
def test_missing_headings(resolver: Resolver, text: str) -> None:
    res = _link(resolver, text)
    assert res.status == "ok" and res.heading_ok is False


def test_block_references(resolver: Resolver) -> None:
    assert _link(resolver, "[[Evasion Attack#^para-1]]").block_ok is True
    assert _link(resolver, "[[Evasion Attack#^PARA-1]]").block_ok is True
    assert _link(resolver, "[[Evasion Attack#^para-2]]").block_ok is False
    assert _link(resolver, "[[Evasion Attack]]").block_ok is None


def test_same_note_heading_link(resolver: Resolver) -> None:
    res = _link(resolver, "[[#Step 1 Prepare the data]]", source="techniques/Evasion Attack.md")
    assert res.path == "techniques/Evasion Attack.md" and res.heading_ok is True
    assert _link(resolver, "[[#Nope]]", source="techniques/Evasion Attack.md").heading_ok is False


def test_heading_on_an_attachment_is_not_checked(resolver: Resolver) -> None:
    res = _link(resolver, "[[paper.pdf#page=3]]")
    assert res.status == "ok" and not res.is_note and res.heading_ok is None


def test_heading_matches_for_the_site() -> None:
    note = Note("n.md", {}, {}, 1, headings=[Heading(1, "Top", 1), Heading(2, "A: B?", 2), Heading(2, "Other", 3)])
    assert heading_matches(note, "a b") == Heading(2, "A: B?", 2)
    assert heading_matches(note, "Top#Other") == Heading(2, "Other", 3)
    assert heading_matches(note, "Other#Top") is None
    assert heading_matches(note, "") is None
    assert canonical_heading("  Step 1:  Do **X**! ") == "step 1 do x"


def test_unparsed_note_still_resolves(write_files, tmp_path: Path) -> None:
    root = write_files({"a.md": "[[b#Heading]]", "b.md": b"\xff\xfe bad bytes"})
    vault = load_vault(root, None, use_cache=False)
    resolver = Resolver(vault)
    res = resolver.resolve_link(vault.notes["a.md"].links[0], vault.notes["a.md"])
    assert (res.status, res.path, res.is_note, res.heading_ok) == ("ok", "b.md", True, None)
