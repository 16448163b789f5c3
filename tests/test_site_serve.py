"""`fmbuild serve`: serves the converted vault and re-converts when a note changes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser.sitekit import copy_fixture

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode("utf-8")
    except OSError:
        return None


def wait_for(predicate, timeout: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_serve_reloads_after_an_edit(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    port = free_port()
    url = f"http://127.0.0.1:{port}/techniques/evasion/"
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmbuild", "serve", "--dev-addr", f"127.0.0.1:{port}"],
        cwd=root, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert wait_for(lambda: (fetch(url) or "").find("fm-evidence") >= 0), "the page never came up"
        note = root / "vault" / "techniques" / "evasion.md"
        note.write_text(note.read_text().replace("A small perturbation", "A freshly edited perturbation"))
        assert wait_for(lambda: "A freshly edited perturbation" in (fetch(url) or "")), "the edit never showed"
        assert not (root / "site").exists()  # serve builds elsewhere; the output folder is untouched
        note.write_text(note.read_text() + "\n\nSee [[no-such-note-here]] for a broken link.\n")
        assert wait_for(lambda: "for a broken link" in (fetch(url) or "")), "the second edit never showed"
        # The findings come from the full re-staging, which follows the edited page.
        assert wait_for(lambda: "finding(s):" in log.read_text("utf-8", "replace"), 30), log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    output = log.read_text("utf-8", "replace")
    # A finding is printed when it appears, once; the summary says what the edit changed.
    assert output.count("[[no-such-note-here]]: no note or file named") == 1, output[-3000:]
    assert "finding(s): 1 new, 0 fixed" in output


def search_entries(base: str) -> list[dict]:
    import json

    text = fetch(f"{base}search/search_index.json")
    return json.loads(text)["docs"] if text else []


def test_serve_keeps_search_right_across_incremental_rebuilds(tmp_path: Path) -> None:
    """Edits of several notes, one of them retitled so that the pages linking to it are rebuilt
    in the same dirty build (mkdocs-material #7638): every edit is found once, nothing is lost."""
    from collections import Counter

    root = copy_fixture(tmp_path / "p")
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmbuild", "serve", "--dev-addr", f"127.0.0.1:{port}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert wait_for(lambda: bool(search_entries(base))), "the site never came up"
        first = {e["location"].split("#")[0] for e in search_entries(base)}
        evasion = root / "vault" / "techniques" / "evasion.md"
        training = root / "vault" / "patterns" / "adversarial-training.md"
        for note, word in ((evasion, "zebrafirst"), (training, "zebrasecond"), (evasion, "zebrathird")):
            original = note.read_text(encoding="utf-8")
            note.write_text(original + f"\n\nAn edit with {word} in it.\n", encoding="utf-8")
            assert wait_for(lambda w=word: any(w in e["text"] for e in search_entries(base)), 30), f"{word} never indexed"
            if note is evasion and word == "zebrafirst":
                note.write_text(original, encoding="utf-8")  # the third edit replaces the first
        text = evasion.read_text(encoding="utf-8")
        title = next(line for line in text.splitlines() if line.startswith("title:"))
        evasion.write_text(text.replace(title, 'title: "Evasion Retitled"', 1), encoding="utf-8")
        assert wait_for(lambda: "Evasion Retitled" in (fetch(f"{base}patterns/adversarial-training/") or ""), 30), \
            "the page linking to the retitled note was not rebuilt"
        time.sleep(2)  # the last rebuild's index is written after its pages
        entries = search_entries(base)
        counts = Counter(e["location"] for e in entries)
        assert [loc for loc, n in counts.items() if n > 1] == []
        assert first <= {e["location"].split("#")[0] for e in entries}
        found = " ".join(e["text"] for e in entries)
        assert "zebrasecond" in found and "zebrathird" in found and "zebrafirst" not in found
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
