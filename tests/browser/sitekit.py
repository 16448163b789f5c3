"""Helpers shared by the site tests: copy a fixture project, build it, serve it on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fmbuild.evidence.contract import read_module
from fmbuild.evidence.records import inputs_hash
from fmbuild.site.build import BuildOptions, BuildReport, build_site
from fmbuild.vault.load import load_project

VAULTS = Path(__file__).resolve().parents[1] / "vaults"
SITE_BASIC = VAULTS / "site-basic"


def copy_fixture(dest: Path, source: Path = SITE_BASIC) -> Path:
    """A private copy of a fixture project (builds write site/ and .fmbuild/ into it).

    The fixture's committed records stand for runs of its modules as they are: their inputs
    hash is refreshed here, so a change to how fmbuild hashes inputs does not make them stale."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("site", ".fmbuild", "__pycache__"))
    for record_file in dest.glob("evidence/*/record/record.json"):
        module = record_file.parent.parent
        data = json.loads(record_file.read_text(encoding="utf-8"))
        data["inputs_hash"] = inputs_hash(module, read_module(module))
        record_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def build(root: Path, **options: object) -> BuildReport:
    config, vault = load_project(start=root, use_cache=False)
    return build_site(config, vault, BuildOptions(**options))  # type: ignore[arg-type]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
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
