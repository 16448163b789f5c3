"""`fmbuild build` as a library: check, convert, build with MkDocs, publish the Editions.

    report = build_site(config, vault, BuildOptions(output=Path("site")))

Stages: check (errors stop the build; with `strict`, warnings too) -> guard the output folder ->
stage (convert every note, generate the pages, copy attachments, evidence artifacts and assets)
-> MkDocs with Material (its link and anchor validation on) -> Editions and `versions.json` ->
the marker. Each stage's time is in the report.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fmbuild.config import Config
from fmbuild.diagnostics import Diagnostic, Severity
from fmbuild.errors import FmError
from fmbuild.site import editions as editions_mod
from fmbuild.site import harden
from fmbuild.site import urls
from fmbuild.site.context import SiteContext, make_context
from fmbuild.site.convert import docs_path
from fmbuild.site.mkdocs_config import mkdocs_config, write_mkdocs_yml
from fmbuild.site.output import OutputError, check_output, prepare_output, write_marker
from fmbuild.site.pages import Page
from fmbuild.site.pages.graph_page import graph_page
from fmbuild.site.pages.note import note_page
from fmbuild.site.pages.overview import growth_page, home_page
from fmbuild.site.pages.atlas import atlas_page
from fmbuild.site.pages.tables import coverage_page, report_page, tag_pages
from fmbuild.site.staging import Staging
from fmbuild.vault.model import Vault
from fmbuild.vault.resolve import Resolver


class BuildError(FmError):
    """The build stopped; the message says why (findings: 1, usage: 2), with the check's
    findings when they stopped it."""

    def __init__(self, message: str, exit_code: int = 1, diagnostics: list[Diagnostic] | None = None) -> None:
        super().__init__(message, exit_code=exit_code)
        self.diagnostics = diagnostics or []


class BuildCancelled(Exception):
    """`BuildOptions.cancelled` said stop (`serve`: a newer edit came in); nothing was removed."""


@dataclass
class BuildOptions:
    output: Path | None = None  # default: [site].output under the project root
    strict: bool = False  # warnings (check's and MkDocs') fail the build
    staging: Path | None = None  # default: .fmbuild/site-src under the project root
    run_mkdocs: bool = True  # False: stop after staging (benchmarks, `serve`)
    skip_check: bool = False  # only for callers that ran the checks themselves
    fail_on_check: bool = True  # False: report check findings but build anyway (`serve`)
    # Asked between steps and between pages; True stops the build with `BuildCancelled` before
    # anything is removed from the staging folder (`serve` restarts it after a newer edit).
    cancelled: Callable[[], bool] | None = None


@dataclass
class BuildReport:
    output: Path | None
    staging: Path
    pages: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    mkdocs_warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # neutralised HTML, skipped Editions, ...
    graph: Any = None  # the graph the pages were built from (`serve` reuses it for its fast step)


def default_staging(config: Config | None, vault: Vault) -> Path:
    if config is not None:
        return config.project_root / ".fmbuild" / "site-src"
    key = hashlib.sha256(str(vault.root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fmbuild-site-{key}"


def default_output(config: Config | None) -> Path | None:
    return config.project_root / config.site.output if config is not None else None


def protected_folders(config: Config | None, vault: Vault) -> dict[str, Path]:
    found = {"vault": vault.root}
    if config is not None:
        found["project root"] = config.project_root
        found["evidence folder"] = config.evidence_root
        found["editions folder"] = config.project_root / "editions"
        found["project's .git folder"] = config.project_root / ".git"
    return found


def build_site(config: Config | None, vault: Vault, options: BuildOptions,
               log: Callable[[str], None] = lambda _m: None) -> BuildReport:
    t_start, c_start = time.perf_counter(), time.process_time()
    staging_root = options.staging or default_staging(config, vault)
    report = BuildReport(output=None, staging=staging_root)
    resolver = Resolver(vault)

    output: Path | None = None
    if options.run_mkdocs:
        wanted = options.output or default_output(config)
        if wanted is None:
            raise BuildError("this vault has no fmbuild.toml: name the output folder with --output DIR", 2)
        try:
            output = check_output(wanted, protected_folders(config, vault), vault.root)
        except OutputError as exc:
            raise BuildError(str(exc), 2) from None
        report.output = output

    if not options.skip_check:
        t, c = time.perf_counter(), time.process_time()
        from fmbuild.check import run_checks

        report.diagnostics = run_checks(vault, config, resolver)
        _timed(report, "check", t, c)
        errors = [d for d in report.diagnostics if d.severity is Severity.ERROR]
        warnings = [d for d in report.diagnostics if d.severity is Severity.WARNING]
        if options.fail_on_check and (errors or (options.strict and warnings)):
            n, what = (len(errors), "error") if errors else (len(warnings), "warning")
            raise BuildError(
                f"check found {n} {what}(s){' (--strict)' if not errors else ''}: fix them, then build again",
                diagnostics=report.diagnostics,
            )

    _stop_if_cancelled(options)
    t, c = time.perf_counter(), time.process_time()
    from fmbuild.graph.build import build_graph

    graph = report.graph = build_graph(vault, config, resolver)
    ctx = make_context(vault, config, graph, resolver)
    _timed(report, "graph", t, c)

    try:
        t, c = time.perf_counter(), time.process_time()
        staging = Staging(staging_root)
        staging.docs.mkdir(parents=True, exist_ok=True)
        _stop_if_cancelled(options)
        pages = stage_pages(ctx, staging, options.cancelled)
        report.pages = len(pages)
        site_dir = output or (staging_root / "site")
        config_path = staging_root / "mkdocs.yml"
        write_mkdocs_yml(mkdocs_config(ctx, staging.docs, site_dir), config_path)
        staging.finish()
        report.notices += ctx.site.neutralised
        _timed(report, "convert", t, c)
        log(f"converted {len(ctx.vault.notes)} notes into {len(pages)} pages ({report.timings['convert']:.2f} s)")

        editions, problems = editions_mod.find_editions(ctx.editions_root)
        report.notices += problems
        if output is not None:
            prepare_output(output)
            t, c = time.perf_counter(), time.process_time()
            harden.CONTENT_REMOVED.clear()
            report.mkdocs_warnings = run_mkdocs(config_path, strict=options.strict)
            _timed(report, "mkdocs", t, c)
            published = set(editions_mod.publish(editions, output))
            t, c = time.perf_counter(), time.process_time()
            hardened = harden.harden_site(
                output, policy_for=lambda rel: harden.EDITION if rel in published else harden.PAGE)
            report.notices += harden.CONTENT_REMOVED
            report.notices += [f"{page}: removed from the built page: {what}"
                               for page, found in hardened.removed.items() for what in found]
            _timed(report, "sanitize", t, c)
            write_marker(output)
    except UnicodeDecodeError as exc:  # a note changed under us since it was loaded
        raise BuildError(f"a file stopped being UTF-8 while building ({exc.reason}); build again") from None
    except OSError as exc:  # a full disk, a folder we may not write: say which, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        raise BuildError(f"{where}{exc.strerror or exc}", 2) from None
    _timed(report, "total", t_start, c_start)
    return report


def _stop_if_cancelled(options: BuildOptions) -> None:
    if options.cancelled is not None and options.cancelled():
        raise BuildCancelled()


def _timed(report: BuildReport, stage: str, wall_start: float, cpu_start: float) -> None:
    """A stage's wall time (`stage`) and this process's CPU time (`stage_cpu`): on a shared
    machine the CPU time is the steadier figure."""
    report.timings[stage] = time.perf_counter() - wall_start
    report.timings[f"{stage}_cpu"] = time.process_time() - cpu_start


def stage_pages(ctx: SiteContext, staging: Staging, cancelled: Callable[[], bool] | None = None) -> list[Page]:
    """Convert every note and generate every page into the staging docs folder."""
    clashes = sorted(n.path for n in ctx.vault.notes.values() if urls.is_reserved(docs_path(n)))
    if clashes:
        raise BuildError(
            f"{clashes[0]}: the site needs this path for a generated page; rename or move the note"
            + (f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else "")
        )
    pages: list[Page] = []
    for note in ctx.published_notes():
        if cancelled is not None and cancelled():
            raise BuildCancelled()
        pages.append(note_page(note, ctx))
    editions, _problems = editions_mod.find_editions(ctx.editions_root)
    pages += [home_page(ctx), coverage_page(ctx), atlas_page(ctx), graph_page(ctx), report_page(ctx),
              editions_mod.editions_page(editions)]
    if ctx.config and ctx.config.chapters:
        pages.append(growth_page(ctx))
    pages += tag_pages(ctx)
    for page in pages:
        staging.write_text(page.path, page.render())
    for rel in sorted(ctx.site.used_attachments):
        staging.copy_file(rel, ctx.vault.root / rel)
    for module in ctx.evidence.modules.values():
        if module.record is None:
            continue
        log_file = module.folder / "record" / "log.txt"
        if log_file.is_file() and not log_file.is_symlink():
            staging.copy_file(f"{module.docs_dir}/log.txt", log_file)
        for artifact in module.artifacts:
            if artifact.kind != "withheld":
                staging.copy_file(f"{module.docs_dir}/{artifact.name}", artifact.source)
    assets = resources.files("fmbuild.site") / "assets"
    _copy_assets(assets, urls.ASSETS_DIR, staging)
    return pages


def _copy_assets(folder, rel: str, staging: Staging) -> None:  # type: ignore[no-untyped-def]
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            _copy_assets(entry, f"{rel}/{entry.name}", staging)
        else:
            staging.write_bytes(f"{rel}/{entry.name}", entry.read_bytes())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_mkdocs(config_path: Path, *, strict: bool) -> list[str]:
    """Build with MkDocs in-process; returns its warnings (with `strict`, warnings raise)."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort, MkDocsException

    logger = logging.getLogger("mkdocs")
    collect = _Collect()
    logger.addHandler(collect)
    previous = logger.propagate
    logger.propagate = False  # MkDocs' messages come back in the report, not on stderr twice
    harden.RENDERING.clear()
    try:
        cfg = load_config(config_file=str(config_path), strict=strict)
        build(cfg)  # MkDocs empties the folder but keeps dot-files: the marker stays
    except Abort as exc:
        detail = "; ".join(collect.messages[:5])
        raise BuildError(f"MkDocs: {exc} {detail}".strip()) from None
    except MkDocsException as exc:
        raise BuildError(f"MkDocs: {exc}") from None
    except RecursionError:  # Python-Markdown recurses per nesting level (lists, emphasis runs)
        page = harden.RENDERING[0] if harden.RENDERING else "a page"
        raise BuildError(f"{page}: nests too deeply for Markdown to render (hundreds of nested list levels "
                         "or emphasis markers); flatten it, or show it as code") from None
    finally:
        logger.removeHandler(collect)
        logger.propagate = previous
    return collect.messages


def stage_changed_notes(config: Config | None, vault: Vault, paths: list[str],
                        staging_root: Path | None = None, graph: Any = None) -> list[str]:
    """`fmbuild serve`'s first step after an edit: re-convert only the named notes' pages.

    The full re-staging that follows (`build_site`) brings the pages that depend on them
    (backlinks, tags, the graph) up to date; this step puts the edited page in front of the
    reader first. `graph`: the last full build's, to skip rebuilding it (the edited notes'
    own edges catch up in the full step). Returns the docs paths written (a path that is not a
    note is ignored).
    """
    notes = [vault.notes[p] for p in paths if p in vault.notes]
    if not notes:
        return []
    resolver = Resolver(vault)
    if graph is None:
        from fmbuild.graph.build import build_graph

        graph = build_graph(vault, config, resolver)
    ctx = make_context(vault, config, graph, resolver)
    staging = Staging(staging_root or default_staging(config, vault))
    written = []
    for note in notes:
        if urls.is_reserved(docs_path(note)):
            continue  # the full build names the clash
        page = note_page(note, ctx)
        staging.write_text(page.path, page.render())
        written.append(page.path)
    return written
