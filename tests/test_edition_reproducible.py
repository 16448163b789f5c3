"""Cutting the same name from the same commit in two clones gives byte-identical Editions."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_edition_support import fmbuild, git

pytest_plugins = ["test_edition_support"]


def test_two_clones_cut_byte_identical_editions(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clones = []
    for name in ("first-clone", "second/clone-at-another-depth"):
        clone = tmp_path / name
        clone.parent.mkdir(parents=True, exist_ok=True)
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        result = fmbuild(monkeypatch, clone, "edition", "cut", "2026.1")
        assert result.exit_code == 0, result.output
        clones.append(clone / "editions" / "2026.1")
    first, second = clones
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs between clones"
    for name in names:  # nothing names where the project lives
        text = (first / name).read_text(encoding="utf-8")
        assert str(tmp_path) not in text and "/tmp/" not in text and str(Path.home()) + "/" not in text


def test_the_date_is_the_commits_not_the_clocks(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    assert fmbuild(monkeypatch, repo, "edition", "cut", "2026.1").exit_code == 0
    manifest = json.loads((repo / "editions" / "2026.1" / "manifest.json").read_text())
    assert manifest["date"] == "2026-03-01"
    manual = (repo / "editions" / "2026.1" / "manual.html").read_text()
    assert "Frozen on 2026-03-01" in manual


def _chromium_ready() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    from fmbuild.editions.pdf import find_chromium

    return find_chromium() is not None


@pytest.mark.skipif(not _chromium_ready(), reason="--pdf needs playwright and Chromium (Debian package chromium)")
def test_the_pdf_is_reproducible_too(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    pdfs = []
    for name in ("a", "b"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        result = fmbuild(monkeypatch, clone, "edition", "cut", "2026.1", "--pdf")
        assert result.exit_code == 0, result.output
        pdfs.append((clone / "editions" / "2026.1" / "manual.pdf").read_bytes())
    assert pdfs[0] == pdfs[1] and pdfs[0].startswith(b"%PDF-")
    assert b"(D:20260301120000+00'00')" in pdfs[0]  # the commit's time, not the printing's
    manifest = json.loads((tmp_path / "a" / "editions" / "2026.1" / "manifest.json").read_text())
    assert "manual.pdf" in manifest["files"] and manifest["versions"]["chromium"]


def test_pdf_without_chromium_is_a_clear_refusal(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMBUILD_CHROMIUM", "/nonexistent/chromium")
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1", "--pdf")
    assert result.exit_code == 2 and ("needs Chromium" in result.output or "needs the playwright" in result.output)
    assert not (repo / "editions" / "2026.1").exists()
