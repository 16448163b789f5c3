"""`fmbuild serve [--dev-addr HOST:PORT]`: preview the site with live reload.

The vault is converted into the staging folder; MkDocs serves that folder and reloads the
browser when it changes. After the first, full build MkDocs rebuilds only the pages whose
staged source changed (its dirty mode), with the search index kept right per page
(`fmbuild.site.live`). On an edit fmbuild first re-converts only the edited notes, so their
pages reach the browser within a second or two even in a thousand-note vault, then re-stages
everything (writing only the files whose bytes changed), which refreshes the pages that depend
on them: backlinks, tags, the graph. Check findings are printed, not fatal: a preview is for
fixing them. The navigation on pages that were not rebuilt keeps its old entries until the next
full build (`fmbuild build`, or restarting `serve`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import click

from fmbuild.commands.common import fail_usage
from fmbuild.errors import FmError
from fmbuild.diagnostics import render
from fmbuild.terminal import echo

DEBOUNCE_S = 0.05  # an editor's save (or a burst of them) settles within this
REBUILD_WAIT_S = 10.0  # how long the full re-staging waits for MkDocs to show the edited pages
# ...and then a moment more: the browser is loading the page from this process, and the full
# re-staging is CPU-bound Python that would slow the server thread.
BROWSER_GRACE_S = 1.0


class _QuietDirtyWarning(logging.Filter):
    """MkDocs warns on every dirty build; `serve` says once what dirty builds leave out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'dirty' build is being performed" not in record.getMessage()


@click.command("serve")
@click.option("--dev-addr", "-a", default="127.0.0.1:8000", show_default=True, metavar="HOST:PORT",
              help="Address to serve on (keep 127.0.0.1 unless you mean to share the preview).")
@click.option("--vault", "vault_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Serve this folder as the vault (any Obsidian vault).")
def command(dev_addr: str, vault_dir: Path | None) -> None:
    """Preview the website with live reload."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    from fmbuild.site import live
    from fmbuild.site.build import BuildCancelled, BuildOptions, build_site, default_staging, stage_changed_notes
    from fmbuild.vault import load as loading

    pending = threading.Event()  # an edit not yet staged
    last_graph: list[object] = [None]
    shown: list[set | None] = [None]  # the findings printed so far; None before the first stage

    def stage(cancellable: bool = False) -> Path:
        config, vault = loading.load_project(vault=vault_dir)
        options = BuildOptions(run_mkdocs=False, fail_on_check=False,
                               cancelled=pending.is_set if cancellable else None)
        report = build_site(config, vault, options)
        found = set(report.diagnostics)
        if shown[0] is None:  # everything once, then only what an edit changed
            if found:
                echo(render(found, "text"), err=True)
        elif found != shown[0]:
            new, fixed = found - shown[0], shown[0] - found
            if new:
                echo(render(new, "text"), err=True)
            echo(f"fmbuild: {len(found)} finding(s): {len(new)} new, {len(fixed)} fixed", err=True)
        shown[0] = found
        last_graph[0] = report.graph
        return report.staging

    def stage_edited(paths: set[Path]) -> bool:
        """The fast step: only the edited notes. False when there is nothing it can do alone."""
        config, vault = loading.load_project(vault=vault_dir)
        root = vault.root.resolve()
        rel = []
        for path in paths:
            try:
                rel.append(path.resolve().relative_to(root).as_posix())
            except ValueError:
                return False  # a record or an Edition changed: every page may depend on it
        if not rel or any(r not in vault.notes for r in rel):
            return False  # an attachment, a new, renamed or deleted note: the full step handles it
        t0 = time.perf_counter()
        written = stage_changed_notes(config, vault, rel, default_staging(config, vault), last_graph[0])
        if written:
            echo(f"fmbuild: re-converted {', '.join(sorted(rel))} ({time.perf_counter() - t0:.2f} s); "
                 "the pages that depend on it follow", err=True)
        return bool(written)

    config, vault = loading.load_project(vault=vault_dir)
    staging = stage()

    watched = [vault.root]
    if config is not None:
        watched += [p for p in (config.evidence_root, config.project_root / "editions") if p.is_dir()]
    changed: set[Path] = set()
    changed_lock = threading.Lock()

    class Changed(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # reads (MkDocs, Obsidian indexing) are not edits
            paths = [str(event.src_path)] + ([str(event.dest_path)] if getattr(event, "dest_path", "") else [])
            paths = [p for p in paths if not ("/.fmbuild" in p or "/.obsidian/workspace" in p or p.endswith("~"))]
            if not paths:
                return
            with changed_lock:
                changed.update(Path(p) for p in paths if not event.is_directory)
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
            with changed_lock:
                paths = set(changed)
                changed.clear()
            try:
                before = live.builds()
                if paths and stage_edited(paths):
                    # Let MkDocs rebuild the edited pages and the browser fetch them first.
                    if live.wait_for_build(before, REBUILD_WAIT_S) and not pending.is_set():
                        pending.wait(BROWSER_GRACE_S)
                    if pending.is_set():
                        continue  # another save came in: its fast step goes first
                stage(cancellable=True)
            except BuildCancelled:
                with changed_lock:  # a newer edit: its fast step first, then this again
                    changed.update(paths)
            except FmError as exc:  # keep serving: the next save may fix it
                echo("\n".join(exc.lines()), err=True)
            except Exception as exc:  # noqa: BLE001 - keep serving: the next save may fix it
                echo(f"fmbuild: error while converting: {exc.__class__.__name__}: {exc}", err=True)

    from mkdocs.commands.serve import serve
    from mkdocs.exceptions import MkDocsException

    handler = logging.StreamHandler()  # MkDocs' CLI would set this up; show its rebuild messages
    handler.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    handler.addFilter(_QuietDirtyWarning())
    mkdocs_log = logging.getLogger("mkdocs")
    mkdocs_log.addHandler(handler)
    mkdocs_log.setLevel(logging.INFO)

    echo(f"serving {default_staging(config, vault)} on http://{dev_addr}/ (Ctrl-C to stop); after the "
         "first build only changed pages are rebuilt, and other pages' navigation refreshes on a full "
         "build", err=True)
    live.start()
    threading.Thread(target=restage_loop, daemon=True).start()
    try:
        serve(config_file=str(staging / "mkdocs.yml"), livereload=True, build_type="dirty", dev_addr=dev_addr)
    except MkDocsException as exc:
        fail_usage(f"MkDocs: {exc}")
    except OSError as exc:  # the address is taken or not ours to bind
        fail_usage(f"cannot serve on {dev_addr}: {exc.strerror or exc}")
    finally:
        observer.stop()
        live.stop()
