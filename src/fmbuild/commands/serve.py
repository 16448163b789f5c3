"""`fmbuild serve [--dev-addr HOST:PORT]`: preview the site with live reload.

The vault is converted into the staging folder; MkDocs serves that folder and reloads the
browser when it changes. fmbuild watches the vault, the evidence records and the Editions, and
re-stages on every change (writing only the files whose bytes changed), so editing a note in
Obsidian updates the open page within a second or two. Check findings are printed, not fatal:
a preview is for fixing them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import click

from fmbuild.commands.common import fail_usage
from fmbuild.config import ConfigError
from fmbuild.diagnostics import render
from fmbuild.terminal import echo

DEBOUNCE_S = 0.4


@click.command("serve")
@click.option("--dev-addr", "-a", default="127.0.0.1:8000", show_default=True, metavar="HOST:PORT",
              help="Address to serve on (keep 127.0.0.1 unless you mean to share the preview).")
@click.option("--vault", "vault_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Serve this folder as the vault (any Obsidian vault).")
def command(dev_addr: str, vault_dir: Path | None) -> None:
    """Preview the website with live reload."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    from fmbuild.site.build import BuildError, BuildOptions, build_site, default_staging

    def stage() -> Path:
        config, vault = loading.load_project(vault=vault_dir)
        report = build_site(config, vault, BuildOptions(run_mkdocs=False, fail_on_check=False))
        if report.diagnostics:
            echo(render(report.diagnostics, "text"), err=True)
        return report.staging

    from fmbuild.vault import load as loading

    try:
        config, vault = loading.load_project(vault=vault_dir)
        staging = stage()
    except ConfigError as exc:
        fail_usage(str(exc))
        return
    except BuildError as exc:
        fail_usage(str(exc))
        return

    watched = [vault.root]
    if config is not None:
        watched += [p for p in (config.evidence_root, config.project_root / "editions") if p.is_dir()]
    pending = threading.Event()

    class Changed(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = str(event.src_path)
            if "/.fmbuild" in path or "/.obsidian/workspace" in path or path.endswith("~"):
                return
            pending.set()

    observer = Observer()
    for folder in watched:
        observer.schedule(Changed(), str(folder), recursive=True)
    observer.daemon = True
    observer.start()

    def restage_loop() -> None:
        while True:
            pending.wait()
            time.sleep(DEBOUNCE_S)  # let an editor finish writing (and batch a burst of saves)
            pending.clear()
            try:
                stage()
            except (ConfigError, BuildError) as exc:
                echo(f"fmbuild: error: {exc}", err=True)
            except Exception as exc:  # noqa: BLE001 - keep serving: the next save may fix it
                echo(f"fmbuild: error while converting: {exc.__class__.__name__}: {exc}", err=True)

    threading.Thread(target=restage_loop, daemon=True).start()

    from mkdocs.commands.serve import serve
    from mkdocs.exceptions import MkDocsException

    handler = logging.StreamHandler()  # MkDocs' CLI would set this up; show its rebuild messages
    handler.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    mkdocs_log = logging.getLogger("mkdocs")
    mkdocs_log.addHandler(handler)
    mkdocs_log.setLevel(logging.INFO)

    echo(f"serving {default_staging(config, vault)} on http://{dev_addr}/ (Ctrl-C to stop)", err=True)
    try:
        serve(config_file=str(staging / "mkdocs.yml"), livereload=True, dev_addr=dev_addr)
    except MkDocsException as exc:
        fail_usage(f"MkDocs: {exc}")
    except OSError as exc:  # the address is taken or not ours to bind
        fail_usage(f"cannot serve on {dev_addr}: {exc.strerror or exc}")
    finally:
        observer.stop()
