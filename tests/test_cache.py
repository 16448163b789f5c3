"""The incremental parse cache: unchanged files are not parsed again; a bad cache is never trusted."""

from __future__ import annotations

import datetime as dt
import marshal
import os
from pathlib import Path

import pytest

from fmbuild.vault import load as loading
from fmbuild.vault.cache import (
    CACHE_DIR,
    CACHE_FILE,
    FORMAT,
    MAGIC,
    ParseCache,
    decode_note,
    encode_note,
    payload_digest,
)
from fmbuild.vault.load import load_vault
from fmbuild.vault.parse import parse_note

NOTES = {
    "a.md": "---\ntitle: A\ncreated: 2026-01-02\nwhen: 2026-01-02 10:30:00+02:00\nnested: {d: [2026-03-04]}\n"
            "successor: \"[[b]]\"\n---\n# A\n\nSee [[b#Part|part]] ^blk #tag {{evidence:m:.1f}} <script>x</script>\n",
    "b.md": "# B\n\n## Part\n",
    "c.md": "---\nweird: !!set {x, y}\n---\n[[a]]\n",
}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths parsed during the test (the loader's parse calls are counted)."""
    calls: list[str] = []
    real = loading.parse_note

    def counting(path: str, text: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path, text, **kw)

    monkeypatch.setattr(loading, "parse_note", counting)
    monkeypatch.setattr(loading, "PARALLEL_THRESHOLD", 10**9)  # keep parsing in this process
    return calls


def snapshot(vault) -> dict:
    return {p: (n.frontmatter, n.headings, n.blocks, n.tags, n.links, n.metric_refs, n.hazards, n.problems, n.sha256)
            for p, n in vault.notes.items()}


def cache_file(root: Path) -> Path:
    return root / CACHE_DIR / CACHE_FILE


def test_unchanged_files_are_not_parsed_again(write_files, counted: list[str]) -> None:
    root = write_files(NOTES)
    first = load_vault(root, None)
    assert sorted(counted) == ["a.md", "b.md", "c.md"]
    counted.clear()
    second = load_vault(root, None)
    # c.md's frontmatter holds a set, which the cache does not carry: it is parsed each time.
    assert counted == ["c.md"]
    assert snapshot(second) == snapshot(first)
    assert second.notes["a.md"].frontmatter["created"] == dt.date(2026, 1, 2)
    assert second.notes["a.md"].frontmatter["nested"] == {"d": [dt.date(2026, 3, 4)]}
    assert second.notes["a.md"].frontmatter["when"].utcoffset() == dt.timedelta(hours=2)


def test_a_changed_file_is_parsed_again(write_files, counted: list[str]) -> None:
    root = write_files(NOTES)
    load_vault(root, None)
    counted.clear()
    b = root / "b.md"
    b.write_text("# B\n\n## Renamed\n", encoding="utf-8")
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 1_000_000))
    vault = load_vault(root, None)
    assert sorted(counted) == ["b.md", "c.md"]
    assert [h.text for h in vault.notes["b.md"].headings] == ["B", "Renamed"]


def test_deleted_files_leave_the_cache(write_files) -> None:
    root = write_files(NOTES)
    load_vault(root, None)
    (root / "b.md").unlink()
    load_vault(root, None)
    cache = ParseCache.for_vault(root, root.resolve())
    cache.load()
    assert "b.md" not in cache.entries and "a.md" in cache.entries


def corrupt_variants(blob: bytes) -> dict[str, bytes]:
    header = len(MAGIC) + 1 + 32
    flipped = bytearray(blob)
    flipped[-5] ^= 0xFF
    return {
        "empty": b"",
        "garbage": os.urandom(200),
        "truncated": blob[: len(blob) // 2],
        "flipped byte": bytes(flipped),
        "other format": MAGIC + bytes([FORMAT + 1]) + blob[len(MAGIC) + 1 :],
        "a pickle": b"\x80\x04\x95" + blob[header:],
    }


@pytest.mark.parametrize("variant", ["empty", "garbage", "truncated", "flipped byte", "other format", "a pickle"])
def test_corrupt_cache_is_discarded_and_rebuilt(write_files, counted: list[str], variant: str) -> None:
    root = write_files(NOTES)
    expected = snapshot(load_vault(root, None))
    path = cache_file(root)
    path.write_bytes(corrupt_variants(path.read_bytes())[variant])
    counted.clear()
    vault = load_vault(root, None)
    assert sorted(counted) == ["a.md", "b.md", "c.md"]  # nothing was trusted
    assert snapshot(vault) == expected
    counted.clear()
    load_vault(root, None)
    assert counted == ["c.md"]  # and it was rebuilt


def _forge(path: Path, content: object) -> None:
    """Write a cache file with a valid header and digest around any content."""
    payload = marshal.dumps(content)
    path.write_bytes(MAGIC + bytes([FORMAT]) + payload_digest(payload) + payload)


def test_foreign_cache_is_discarded(write_files, counted: list[str]) -> None:
    root = write_files(NOTES)
    load_vault(root, None)
    cache = ParseCache.for_vault(root, root.resolve())
    cache.load()
    _forge(cache_file(root), {"fingerprint": "another fmbuild", "vault": str(root.resolve()), "entries": cache.entries})
    counted.clear()
    load_vault(root, None)
    assert sorted(counted) == ["a.md", "b.md", "c.md"]
    _forge(cache_file(root), {"fingerprint": cache.fingerprint, "vault": "/another/vault", "entries": cache.entries})
    counted.clear()
    load_vault(root, None)
    assert sorted(counted) == ["a.md", "b.md", "c.md"]


def test_entries_of_the_wrong_shape_are_misses_not_crashes(write_files, counted: list[str]) -> None:
    root = write_files(NOTES)
    expected = snapshot(load_vault(root, None))
    cache = ParseCache.for_vault(root, root.resolve())
    cache.load()
    a_size, a_mtime, a_data, a_links = cache.entries["a.md"]
    b_size, b_mtime, b_data, b_links = cache.entries["b.md"]
    bad_links = list(marshal.loads(a_data))
    bad_links[8] = [("no-such-kind", "x")]
    entries = {
        "a.md": (a_size, a_mtime, marshal.dumps(tuple(bad_links)), a_links),
        "b.md": (b_size, b_mtime, marshal.dumps(("too", "short")), b_links),
        "c.md": "not even a tuple",
        "d.md": (1, 2, b"\xff not marshal", b""),
    }
    _forge(cache_file(root), {"fingerprint": cache.fingerprint, "vault": str(root.resolve()), "entries": entries})
    counted.clear()
    vault = load_vault(root, None)
    assert sorted(counted) == ["a.md", "b.md", "c.md"]
    assert snapshot(vault) == expected


def test_cache_that_cannot_be_written_is_not_an_error(write_files, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_files(NOTES)
    (root / CACHE_DIR).write_text("a file where the cache folder should be", encoding="utf-8")
    vault = load_vault(root, None)
    assert set(vault.notes) == {"a.md", "b.md", "c.md"}


def test_no_cache_writes_nothing(write_files) -> None:
    root = write_files(NOTES)
    vault = load_vault(root, None, use_cache=False)
    assert not (root / CACHE_DIR).exists() and vault.cache_dir is None


def test_cache_lives_in_the_project_and_is_git_ignored(fixture_vault) -> None:
    from fmbuild.vault.load import load_project

    project = fixture_vault("core-manual")
    config, vault = load_project(start=project)
    assert vault.cache_dir == project / CACHE_DIR
    assert (project / CACHE_DIR / ".gitignore").read_text(encoding="utf-8").strip().endswith("*")


def test_encode_decode_round_trip() -> None:
    note = parse_note("x/a.md", NOTES["a.md"], sha256="abc", size=10)
    encoded = encode_note(note)
    assert encoded is not None
    assert decode_note("x/a.md", marshal.loads(marshal.dumps(encoded))) == note
    assert encode_note(parse_note("c.md", NOTES["c.md"])) is None


def test_link_findings_are_kept_while_nothing_they_depend_on_changes(write_files, fmbuild) -> None:
    root = write_files({
        "note-one.md": "[[note-onw]] [[target#Part]] [[target#Gone]]\n",
        "target.md": "# T\n\n## Part\n",
        "other.md": "[[target]]\n",
    })
    first = fmbuild("check", "--vault", str(root), "--format", "json")
    assert (root / CACHE_DIR / "links-cache.bin").exists()
    assert "did you mean [[note-one]]?" in first.stdout and "no heading 'Gone'" in first.stdout
    assert fmbuild("check", "--vault", str(root), "--format", "json").stdout == first.stdout
    # The linked note gains the heading: the linking note is checked again, though unchanged.
    (root / "target.md").write_text("# T\n\n## Part\n\n## Gone\n", encoding="utf-8")
    assert "no heading 'Gone'" not in fmbuild("check", "--vault", str(root)).stdout
    # A file appears: names may resolve differently, so everything is checked again.
    (root / "note-onw.md").write_text("x", encoding="utf-8")
    assert fmbuild("check", "--vault", str(root), "--format", "json").stdout.strip() == "[]"
    (root / "note-onw.md").unlink()
    assert "did you mean [[note-one]]?" in fmbuild("check", "--vault", str(root)).stdout


def test_a_corrupt_link_findings_file_is_ignored(write_files, fmbuild) -> None:
    root = write_files({"a.md": "[[b]]\n"})
    first = fmbuild("check", "--vault", str(root)).stdout
    (root / CACHE_DIR / "links-cache.bin").write_bytes(b"garbage")
    assert fmbuild("check", "--vault", str(root)).stdout == first
    cache = root / CACHE_DIR / "links-cache.bin"
    _forge(cache, {"key": "whatever", "notes": {"a.md": ("sha", [], [(1, 1, "error", "x", "forged")])}})
    assert fmbuild("check", "--vault", str(root)).stdout == first


# --- the parse cache does not trust size and mtime alone (issue 23, item 10) --------------------

def _old_enough(path: Path) -> None:
    """Move a file's times out of the racy window (a real edit an hour ago)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns - 3600 * 10**9, st.st_mtime_ns - 3600 * 10**9))


def test_an_edit_that_restores_size_and_mtime_is_seen(tmp_path: Path) -> None:
    from fmbuild.vault.load import load_vault

    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "a.md"
    note.write_text("---\ntitle: Alpha\n---\n# Alpha\n")
    _old_enough(note)
    first = load_vault(vault, None)
    assert first.notes["a.md"].frontmatter["title"] == "Alpha"
    st = note.stat()
    note.write_text("---\ntitle: Omega\n---\n# Alpha\n")  # same size
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime put back
    assert note.stat().st_size == st.st_size and note.stat().st_mtime_ns == st.st_mtime_ns
    again = load_vault(vault, None)
    assert again.notes["a.md"].frontmatter["title"] == "Omega"


def test_a_file_replaced_under_the_same_times_is_seen(tmp_path: Path) -> None:
    from fmbuild.vault.load import load_vault

    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "a.md"
    note.write_text("---\ntitle: Alpha\n---\n")
    _old_enough(note)
    load_vault(vault, None)
    st = note.stat()
    other = tmp_path / "other.md"
    other.write_text("---\ntitle: Bravo\n---\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(note)  # a new inode with the old size and mtime (what `cp -p` or a checkout can do)
    assert load_vault(vault, None).notes["a.md"].frontmatter["title"] == "Bravo"


def test_an_edit_within_the_timestamp_tick_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file changed right before it was cached is checked by content next time (racy entry)."""
    import fmbuild.vault.cache as cache_module
    from fmbuild.vault.load import load_vault

    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "a.md"
    note.write_text("---\ntitle: Alpha\n---\n")
    load_vault(vault, None)  # cached right after the write: racy
    st = note.stat()
    # A file system with coarse timestamps: the edit keeps mtime and ctime (simulated by giving
    # the cache the old stamp back for the new content).
    note.write_text("---\ntitle: Bravo\n---\n")
    real_get = cache_module.ParseCache.get
    monkeypatch.setattr(cache_module.ParseCache, "get",
                        lambda self, path, size, stamp, abspath=None: real_get(
                            self, path, size, (st.st_mtime_ns, st.st_ctime_ns, st.st_ino), abspath))
    assert load_vault(vault, None).notes["a.md"].frontmatter["title"] == "Bravo"


def test_an_unchanged_file_with_new_metadata_stays_a_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod changes the ctime: the content check keeps the entry, no parse happens."""
    import fmbuild.vault.load as load_module
    from fmbuild.vault.load import load_vault

    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "a.md"
    note.write_text("---\ntitle: Alpha\n---\n")
    _old_enough(note)
    load_vault(vault, None)
    note.chmod(0o600)
    parsed = []
    real = load_module.parse_note
    monkeypatch.setattr(load_module, "parse_note", lambda *a, **k: parsed.append(a[0]) or real(*a, **k))
    assert load_vault(vault, None).notes["a.md"].frontmatter["title"] == "Alpha"
    assert parsed == []
