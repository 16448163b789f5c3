"""Helpers shared by the site tests: copy a fixture project, build it, serve it on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fmbuild.site.build import BuildOptions, BuildReport, build_site
from fmbuild.vault.load import load_project

VAULTS = Path(__file__).resolve().parents[1] / "vaults"
SITE_BASIC = VAULTS / "site-basic"


def copy_fixture(dest: Path, source: Path = SITE_BASIC) -> Path:
    """A private copy of a fixture project (builds write site/ and .fmbuild/ into it)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("site", ".fmbuild", "__pycache__"))
    return dest


def build(root: Path, **options: object) -> BuildReport:
    config, vault = load_project(start=root, use_cache=False)
    return build_site(config, vault, BuildOptions(**options))  # type: ignore[arg-type]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
