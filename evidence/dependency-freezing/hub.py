"""A model hub on loopback: revisions are folders, `latest` is a mutable pointer, and anyone who
can publish can move it. Clients download over HTTP the way hub libraries do."""

from __future__ import annotations

import functools
import hashlib
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Hub:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, repo: str, revision: str, payload: bytes, move_latest: bool = True) -> None:
        folder = self.root / repo / revision
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(payload)
        if move_latest:
            (self.root / repo / "latest").write_text(revision)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the run logs its own events
        pass


class PinError(Exception):
    pass


def download(base_url: str, repo: str, revision: str | None = None, sha256: str | None = None) -> tuple[bytes, str]:
    """Fetch `model.safetensors`; `revision=None` follows `latest`. With `sha256`, a mismatch is refused."""
    if revision is None:
        with urllib.request.urlopen(f"{base_url}/{repo}/latest", timeout=10) as resp:
            revision = resp.read().decode().strip()
    with urllib.request.urlopen(f"{base_url}/{repo}/{revision}/model.safetensors", timeout=10) as resp:
        payload = resp.read()
    if sha256 is not None and hashlib.sha256(payload).hexdigest() != sha256:
        raise PinError(f"{repo}@{revision}: sha256 {hashlib.sha256(payload).hexdigest()[:12]}… is not the pinned {sha256[:12]}…")
    return payload, revision
