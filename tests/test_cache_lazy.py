"""Cached notes decode their body links only when a rule reads them, and stay equal to the
parsed note they stand for."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

from fmbuild.vault.cache import CachedNote, decode_note, encode_note
from fmbuild.vault.model import LinkKind
from fmbuild.vault.parse import parse_note

TEXT = """---
title: P
mitigates:
  - technique: "[[techniques/evasion]]"
    use: why
related: "[[other#Part]]"
---
# P

See [[evasion]], ![[figure.png|300]] and [a](notes/b.md#x).
"""


def _cached(text: str, source: str | None = None) -> CachedNote:
    note = parse_note("patterns/p.md", text, sha256="s", size=len(text))
    encoded = encode_note(note)
    assert encoded is not None
    cached = decode_note("patterns/p.md", marshal.loads(marshal.dumps(encoded)), source=source)
    assert isinstance(cached, CachedNote)
    return cached


def test_property_links_come_without_decoding_the_body() -> None:
    cached = _cached(TEXT)
    props = cached.property_links
    assert [link.raw for link in props] == ["[[techniques/evasion]]", "[[other#Part]]"]
    assert cached._packed_links  # body links not decoded yet
    links = cached.links
    assert [link.kind for link in links] == [LinkKind.PROPERTY] * 2 + [LinkKind.WIKILINK, LinkKind.EMBED, LinkKind.MARKDOWN]
    # the same objects: the graph tells consumed links apart by identity
    assert links[0] is props[0] and cached.property_links[1] is links[1]


def test_a_cached_note_equals_the_parsed_one_both_ways() -> None:
    parsed = parse_note("patterns/p.md", TEXT, sha256="s", size=len(TEXT))
    cached = _cached(TEXT)
    assert cached == parsed and parsed == cached
    assert cached != parse_note("patterns/p.md", TEXT + "[[more]]\n", sha256="s", size=len(TEXT))


def test_links_that_do_not_decode_are_parsed_again_from_the_file(tmp_path: Path) -> None:
    source = tmp_path / "p.md"
    source.write_text(TEXT, encoding="utf-8")
    cached = _cached(TEXT, source=str(source))
    cached._packed_links = marshal.dumps(([1], [2, 3]))  # columns of different lengths
    assert [link.target for link in cached.links][-3:] == ["evasion", "figure.png", "notes/b.md"]


def test_links_set_on_a_cached_note_replace_the_packed_ones() -> None:
    cached = _cached(TEXT)
    cached.links = []
    assert cached.links == [] and cached.property_links == []


HEADED = TEXT + """
## Part two ^para
<script>alert(1)</script>
"""


def test_headings_and_blocks_are_decoded_when_first_read() -> None:
    parsed = parse_note("patterns/p.md", HEADED)
    cached = _cached(HEADED)
    assert cached.hazards == parsed.hazards and [h.kind for h in cached.hazards] == ["script"]
    assert cached._packed_rest  # hazards come without decoding the rest
    assert [(h.level, h.text, h.line) for h in cached.headings] == [(1, "P", 8), (2, "Part two ^para", 12)]
    assert not cached._packed_rest  # decoded once, together
    assert cached.blocks == parsed.blocks and [b.id for b in cached.blocks] == ["para"]
    assert cached.headings is cached.headings  # kept, not decoded again


def test_headings_set_on_a_cached_note_are_kept() -> None:
    cached = _cached(HEADED)
    cached.headings = []
    assert cached.headings == [] and [b.id for b in cached.blocks] == ["para"]


def test_headings_that_do_not_decode_are_parsed_again_from_the_file(tmp_path: Path) -> None:
    source = tmp_path / "p.md"
    source.write_text(HEADED, encoding="utf-8")
    cached = _cached(HEADED, source=str(source))
    cached._packed_rest = marshal.dumps(([(1,)], []))  # a heading of the wrong shape
    assert [h.text for h in cached.headings] == ["P", "Part two ^para"]
    gone = _cached(HEADED, source=str(tmp_path / "missing.md"))
    gone._packed_rest = b"\x00"
    assert gone.headings == [] and gone.blocks == []


# --- the side file of changes ---------------------------------------------------------------------


def _vault(tmp_path: Path, count: int) -> Path:
    root = tmp_path / "v"
    root.mkdir()
    for i in range(count):
        (root / f"n{i:03d}.md").write_text(f"# N{i}\n\n[[n{(i + 1) % count:03d}]]\n", encoding="utf-8")
    return root


def _edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new identity, surely


def test_a_few_changes_go_to_the_side_file(tmp_path: Path) -> None:
    from fmbuild.vault.cache import CACHE_DIR, CACHE_FILE, DELTA_FILE
    from fmbuild.vault.load import load_vault

    root = _vault(tmp_path, 100)
    load_vault(root, None)
    main = root / CACHE_DIR / CACHE_FILE
    delta = root / CACHE_DIR / DELTA_FILE
    before = main.read_bytes()
    assert not delta.exists()

    _edit(root / "n001.md", "# Changed\n\n[[n002#Nowhere]]\n")
    (root / "n002.md").unlink()
    vault = load_vault(root, None)
    assert main.read_bytes() == before and delta.exists()
    assert vault.notes["n001.md"].headings[0].text == "Changed" and "n002.md" not in vault.notes

    again = load_vault(root, None)  # main + side file give the same model
    assert {p: (n.headings, n.links) for p, n in again.notes.items()} == {
        p: (n.headings, n.links) for p, n in vault.notes.items()
    }


def test_many_changes_rewrite_the_whole_cache(tmp_path: Path) -> None:
    from fmbuild.vault import cache
    from fmbuild.vault.load import load_vault

    root = _vault(tmp_path, 100)
    load_vault(root, None)
    _edit(root / "n001.md", "# One\n")
    load_vault(root, None)
    delta = root / cache.CACHE_DIR / cache.DELTA_FILE
    assert delta.exists()
    for i in range(cache.DELTA_MIN + 1):
        _edit(root / f"n{i:03d}.md", f"# Edited {i}\n")
    vault = load_vault(root, None)
    assert not delta.exists()
    assert vault.notes["n005.md"].headings[0].text == "Edited 5"


def test_a_damaged_or_stale_side_file_only_costs_parsing(tmp_path: Path, monkeypatch) -> None:
    from fmbuild.vault import cache, load
    from fmbuild.vault.load import load_vault

    root = _vault(tmp_path, 20)
    load_vault(root, None)
    _edit(root / "n003.md", "# Three\n")
    load_vault(root, None)
    delta = root / cache.CACHE_DIR / cache.DELTA_FILE
    delta.write_bytes(delta.read_bytes()[:-7])  # truncated: its digest fails

    parsed: list[str] = []
    real = load.parse_note
    monkeypatch.setattr(load, "parse_note", lambda path, *a, **k: parsed.append(path) or real(path, *a, **k))
    vault = load_vault(root, None)
    assert parsed == ["n003.md"]  # the main file's entry for it is out of date: a miss, not a lie
    assert vault.notes["n003.md"].headings[0].text == "Three"


# --- the links file ------------------------------------------------------------------------------


def _linked_vault(tmp_path: Path, count: int) -> Path:
    root = _vault(tmp_path, count)
    (root / "n000.md").write_text("# Zero\n\nSee [[n001#N1]] and [[n002|two]] ^zero\n", encoding="utf-8")
    return root


def test_body_links_live_in_the_links_file_until_read(tmp_path: Path) -> None:
    from fmbuild.vault import cache
    from fmbuild.vault.load import load_vault

    root = _linked_vault(tmp_path, 10)
    parsed = load_vault(root, None)
    main = (root / cache.CACHE_DIR / cache.CACHE_FILE).read_bytes()
    assert b"[[n001#N1]]" not in main  # the bulk is kept apart
    assert b"[[n001#N1]]" in (root / cache.CACHE_DIR / cache.LINKS_FILE).read_bytes()
    again = load_vault(root, None)
    note = again.notes["n000.md"]
    assert isinstance(note, CachedNote) and isinstance(note._packed_links, cache._LinksSlice)
    assert note.links == parsed.notes["n000.md"].links
    assert {p: n.links for p, n in again.notes.items()} == {p: n.links for p, n in parsed.notes.items()}


def test_a_damaged_or_missing_links_file_costs_parsing_not_truth(tmp_path: Path) -> None:
    from fmbuild.vault import cache
    from fmbuild.vault.load import load_vault

    root = _linked_vault(tmp_path, 10)
    expected = {p: n.links for p, n in load_vault(root, None).notes.items()}
    links_file = root / cache.CACHE_DIR / cache.LINKS_FILE
    data = bytearray(links_file.read_bytes())
    at = data.index(b"n001#N1")
    data[at : at + 7] = b"n009#N9"  # same length: only the digest can tell
    links_file.write_bytes(bytes(data))
    assert {p: n.links for p, n in load_vault(root, None).notes.items()} == expected
    links_file.unlink()
    assert {p: n.links for p, n in load_vault(root, None).notes.items()} == expected


def test_rewriting_the_cache_carries_the_kept_links_over(tmp_path: Path) -> None:
    from fmbuild.vault import cache
    from fmbuild.vault.load import load_vault

    root = _linked_vault(tmp_path, 100)
    expected = load_vault(root, None).notes["n000.md"].links
    for i in range(1, cache.DELTA_MIN + 2):  # enough changes for a whole new cache
        _edit(root / f"n{i:03d}.md", f"# Edited {i}\n\n[[n000#Zero]]\n")
    load_vault(root, None)
    assert not (root / cache.CACHE_DIR / cache.DELTA_FILE).exists()
    kept = load_vault(root, None).notes["n000.md"]
    assert isinstance(kept._packed_links, cache._LinksSlice) and kept.links == expected


def test_table_links_come_without_decoding_and_keep_reading_order() -> None:
    text = TEXT + "\n| Covers | Why |\n|---|---|\n| [[techniques/a]] | x [[b]] |\n\nAfter [[c]].\n"
    parsed = parse_note("playbooks/p.md", text)
    cached = _cached(text)
    table = cached.table_links
    assert [link.raw for link in table] == ["[[techniques/a]]", "[[b]]"] and cached._packed_links
    assert [link.raw for link in cached.links] == [link.raw for link in parsed.links]
    assert cached.links[-3] is table[0] and cached.links == parsed.links


def test_link_names_come_without_decoding_the_links() -> None:
    text = TEXT + "[[../x/Y.md]] [[..]] [[#Self]]\n"
    parsed = parse_note("patterns/p.md", text)
    cached = _cached(text)
    assert cached.link_names == parsed.link_names
    assert {["techniques", "evasion"][-1], "y.md", "", None} <= cached.link_names
    assert cached._packed_links  # still packed


def test_link_names_are_worked_out_as_the_model_defines_them() -> None:
    from fmbuild.vault.cache import _link_names
    from fmbuild.vault.model import Link, link_file_name

    odd = ["", " a", "a ", "a/", "a\\b", ".", "..", "x/..", "x/.", "A/B.MD", "a/ /", "\t", "/", "Dir/Note"]
    links = [Link(LinkKind.WIKILINK, target, None, None, None, 1, 1, "") for target in odd]
    expected = sorted({link_file_name(t) for t in odd}, key=lambda name: (name is None, name or ""))
    assert _link_names(links) == expected
    assert expected[-1] is None and "b.md" in expected and "note" in expected
