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
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmbuild", "serve", "--dev-addr", f"127.0.0.1:{port}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert wait_for(lambda: (fetch(url) or "").find("fm-evidence") >= 0), "the page never came up"
        note = root / "vault" / "techniques" / "evasion.md"
        note.write_text(note.read_text().replace("A small perturbation", "A freshly edited perturbation"))
        assert wait_for(lambda: "A freshly edited perturbation" in (fetch(url) or "")), "the edit never showed"
        assert not (root / "site").exists()  # serve builds elsewhere; the output folder is untouched
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
