"""`fmbuild edition keygen|sign|verify`: Ed25519 signatures, and verify naming what differs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from test_edition_support import fmbuild

pytest_plugins = ["test_edition_support"]


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = tmp_path / "keys" / "edition.key"
    result = fmbuild(monkeypatch, tmp_path, "edition", "keygen", "--out", str(key))
    assert result.exit_code == 0, result.output
    return key


@pytest.fixture
def signed(repo: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    result = fmbuild(monkeypatch, repo, "edition", "sign", "2026.1", "--key", str(keys))
    assert result.exit_code == 0, result.output
    return repo / "editions" / "2026.1"


def test_keygen_writes_a_private_key_only_its_owner_can_read(keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.with_name("edition.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = fmbuild(monkeypatch, keys.parent, "edition", "keygen", "--out", str(keys))
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_keys_inside_the_repository_are_refused(repo: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inside = repo / "signing.key"
    result = fmbuild(monkeypatch, repo, "edition", "keygen", "--out", str(inside))
    assert result.exit_code == 2 and "inside the repository" in result.output and not inside.exists()
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    inside.write_bytes(keys.read_bytes())
    result = fmbuild(monkeypatch, repo, "edition", "sign", "2026.1", "--key", str(inside))
    assert result.exit_code == 2 and "inside the repository" in result.output
    assert not (repo / "editions" / "2026.1" / "signature.json").exists()
    forced = fmbuild(monkeypatch, repo, "edition", "sign", "2026.1", "--key", str(inside), "--force")
    assert forced.exit_code == 0, forced.output


def test_sign_then_verify(signed: Path, keys: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads((signed / "signature.json").read_text())
    assert doc["algorithm"] == "ed25519" and doc["signed_file"] == "manifest.json"
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--pubkey", str(keys) + ".pub")
    assert result.exit_code == 0, result.output
    assert "3 files match the manifest" in result.output and f"signature by key {doc['key_id']} is valid" in result.output
    unpinned = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert unpinned.exit_code == 1 and "no trusted key" in unpinned.stdout  # nothing pinned: no pass
    loose = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--integrity-only")
    assert loose.exit_code == 0 and "key not pinned" in loose.output
    again = fmbuild(monkeypatch, repo, "edition", "sign", "2026.1", "--key", str(keys))
    assert again.exit_code == 2 and "already signed" in again.output
    assert "signed" in fmbuild(monkeypatch, repo, "edition", "list").output


@pytest.mark.parametrize("name", ["manual.html", "CHANGELOG.md", "changelog.json"])
def test_one_changed_byte_is_named(signed: Path, keys: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = signed / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--pubkey", str(keys) + ".pub")
    assert result.exit_code == 1
    assert f"editions/2026.1/{name}: content differs from the manifest (same size, other bytes" in result.stdout
    others = {"manual.html", "CHANGELOG.md", "changelog.json"} - {name}
    assert not any(f"/{other}:" in result.stdout for other in others)  # only the changed file is named
    assert "does NOT verify" in result.output


def test_an_edited_manifest_fails_its_signature(signed: Path, keys: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = signed / "manifest.json"
    path.write_text(path.read_text().replace('"maturity": "draft"', '"maturity": "verified"', 1))
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--pubkey", str(keys) + ".pub")
    assert result.exit_code == 1
    assert "editions/2026.1/manifest.json: does not match its signature" in result.stdout


def test_missing_extra_and_foreign_key(signed: Path, keys: Path, repo: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other" / "other.key"
    assert fmbuild(monkeypatch, tmp_path, "edition", "keygen", "--out", str(other)).exit_code == 0
    foreign = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--pubkey", str(other) + ".pub")
    assert foreign.exit_code == 1 and "not by the given key" in foreign.stdout
    (signed / "CHANGELOG.md").unlink()
    (signed / "notes.txt").write_text("added later\n")
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert result.exit_code == 1
    assert "editions/2026.1/CHANGELOG.md: missing" in result.stdout
    assert "editions/2026.1/notes.txt: not listed in the manifest" in result.stdout


def test_unsigned_edition_verifies_its_files_but_not_a_pinned_key(repo: Path, keys: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    plain = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--integrity-only")
    assert plain.exit_code == 0 and "unsigned" in plain.output
    pinned = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--pubkey", str(keys) + ".pub")
    assert pinned.exit_code == 1 and "signature.json: missing" in pinned.stdout


def test_bad_key_files_are_one_line_errors(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    junk = tmp_path / "junk.key"
    junk.write_text("not a key\n")
    for args in (["sign", "2026.1", "--key", str(junk)], ["verify", "2026.1", "--pubkey", str(junk)]):
        result = fmbuild(monkeypatch, repo, "edition", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.startswith("fmbuild: error: ") and "junk.key" in result.output


def test_source_check_against_the_commit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_edition_support import commit_all

    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    ok = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--source", "--integrity-only")
    assert ok.exit_code == 0 and "every note and record file matches commit" in ok.output
    path = repo / "editions" / "2026.1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["notes"][0]["sha256"] = "0" * 64  # an unsigned manifest claiming other content
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    commit_all(repo, "tamper")
    bad = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1", "--source", "--integrity-only")
    assert bad.exit_code == 1
    assert f"vault/{manifest['notes'][0]['path']}: differs at commit" in bad.stdout


# --- the trusted key the project pins (editions/KEYS) ---------------------------------------------


def test_without_a_pinned_key_an_unsigned_edition_does_not_verify(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert result.exit_code == 1
    assert "no trusted key: editions/KEYS pins none and --pubkey was not given" in result.stdout
    assert "does NOT verify" in result.output


def test_a_pinned_key_makes_unsigned_and_re_signed_editions_fail_by_default(
        signed: Path, keys: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = fmbuild(monkeypatch, repo, "edition", "pin", str(keys) + ".pub")
    assert pinned.exit_code == 0 and "pinned key" in pinned.output
    assert (repo / "editions" / "KEYS").read_text().startswith("ed25519:")
    good = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert good.exit_code == 0, good.output
    assert "is valid" in good.output and "not pinned" not in good.output
    # re-signed by someone else: the downgrade a writer of the folder could make
    other = tmp_path / "other" / "other.key"
    assert fmbuild(monkeypatch, tmp_path, "edition", "keygen", "--out", str(other)).exit_code == 0
    assert fmbuild(monkeypatch, repo, "edition", "sign", "2026.1", "--key", str(other), "--force").exit_code == 0
    resigned = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert resigned.exit_code == 1 and "not by a key editions/KEYS pins:" in resigned.stdout
    # signature removed: unsigned
    (signed / "signature.json").unlink()
    unsigned = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert unsigned.exit_code == 1 and "signature.json: missing" in unsigned.stdout


def test_a_bad_keys_file_is_a_one_line_error(signed: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "editions" / "KEYS").write_text("# trusted\ned25519:not-base64!\n")
    result = fmbuild(monkeypatch, repo, "edition", "verify", "2026.1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("fmbuild: error: editions/KEYS:2: not a 32-byte Ed25519 public key")


def test_keygen_pin_adds_the_key_once(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "k" / "edition.key"
    result = fmbuild(monkeypatch, repo, "edition", "keygen", "--out", str(key), "--pin")
    assert result.exit_code == 0, result.output
    again = fmbuild(monkeypatch, repo, "edition", "pin", str(key) + ".pub")
    assert again.exit_code == 0
    lines = [l for l in (repo / "editions" / "KEYS").read_text().splitlines() if l.strip()]
    assert len(lines) == 1


@pytest.mark.parametrize("name, why", [
    ("E1", "without regard to case"),
    ("CON", "reserved"), ("nul.1", "reserved"), ("keys", "reserved"), ("latest", "reserved"),
    ("\uff45" + "1", "not a usable Edition name"),  # fullwidth e: another normalisation of e1
    ("e\u0301", "not a usable Edition name"),
    ("2026.", "not a usable Edition name"),
])
def test_edition_names_that_would_collide_are_refused(repo: Path, monkeypatch: pytest.MonkeyPatch, name: str, why: str) -> None:
    assert fmbuild(monkeypatch, repo, "edition", "cut", "e1").exit_code == 0
    result = fmbuild(monkeypatch, repo, "edition", "cut", name)
    assert result.exit_code == 2 and why in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (repo / "editions").iterdir()) == ["e1"]
