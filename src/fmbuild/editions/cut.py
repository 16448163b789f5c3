"""`fmbuild edition cut NAME`: freeze the manual at the current commit as `editions/NAME/`.

Refused unless the vault, the evidence and fmbuild.toml are committed, `check` finds no error,
and every note's evidence stands (`--allow-unverified` cuts anyway and marks those notes in the
manifest and the manual). The manual and the changelogs are built in memory, the manifest
lists their hashes, and all of it is written in one atomic step (`store.write_edition`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbuild.config import CONFIG_NAME
from fmbuild.diagnostics import render
from fmbuild.editions import changelog as changes
from fmbuild.editions.errors import EXIT_FINDINGS, EditionError
from fmbuild.editions.gitinfo import head_commit, uncommitted
from fmbuild.editions.manifest import build_manifest, sha256
from fmbuild.editions.manual import compile_manual
from fmbuild.editions.readiness import Readiness, assess
from fmbuild.editions.store import (
    CHANGELOG_JSON,
    CHANGELOG_MD,
    MANIFEST,
    MANUAL,
    MANUAL_PDF,
    check_new_name,
    editions_root,
    find,
    list_editions,
    manifest_bytes,
    write_edition,
)

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault

MAX_LISTED = 40  # lines of detail before "and N more"


@dataclass(frozen=True, slots=True)
class CutOptions:
    allow_unverified: bool = False
    allow_dirty: bool = False
    since: str | None = None  # the Edition to compare with (default: the latest)
    pdf: bool = False  # also print the manual to manual.pdf (Chromium)


@dataclass
class CutResult:
    folder: Path
    manifest: dict[str, Any]
    changelog: changes.Changelog
    readiness: Readiness


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED] + [f"... and {len(lines) - MAX_LISTED} more"]


def cut_edition(config: Config, vault: Vault, name: str, options: CutOptions,
                log: Callable[[str], None] = lambda _m: None) -> CutResult:
    from fmbuild.graph.build import build_graph
    from fmbuild.vault.resolve import Resolver

    root = editions_root(config.project_root)
    check_new_name(root, name)
    if (root / name).exists():
        raise EditionError(f"Edition {name} exists (editions/{name}/): an Edition is never rewritten; cut a new name")
    commit = head_commit(config.project_root)

    vault_rel = _relative(config.vault_path, config.project_root)
    tracked = [vault_rel, config.evidence.path.strip("/") or "evidence", CONFIG_NAME]
    dirty = uncommitted(config.project_root, tracked)
    if dirty and not options.allow_dirty:
        raise EditionError(
            f"{len(dirty)} file(s) under {', '.join(tracked)} differ from commit {commit.sha[:12]}: "
            "an Edition freezes a commit, so commit them first (or --allow-dirty, recorded in the manifest)",
            details=_capped(dirty),
        )

    previous = None
    if options.since is not None:
        previous = find(root, options.since)
    else:
        existing, _problems = list_editions(root)
        previous = existing[-1] if existing else None

    resolver = Resolver(vault)
    log("checking the vault and the evidence records ...")
    readiness = assess(config, vault, resolver)
    if readiness.errors:
        text = render(readiness.errors, "text", prefix=vault_rel + "/")
        raise EditionError(
            f"fmbuild check found {len(readiness.errors)} error(s): an Edition freezes a clean manual",
            details=_capped(text.splitlines()), exit_code=EXIT_FINDINGS,
        )
    unverified = readiness.unverified
    if unverified and not options.allow_unverified:
        raise EditionError(
            f"the evidence of {len(unverified)} note(s) does not stand (run: fmbuild verify --record), "
            "or cut with --allow-unverified to mark them in the Edition",
            details=_capped([f"{vault_rel}/{s.path}: {s.state}: {s.detail}" for s in unverified]),
            exit_code=EXIT_FINDINGS,
        )

    log("building the graph and compiling the manual ...")
    graph = build_graph(vault, config, resolver)
    manual_html = compile_manual(config, vault, resolver, readiness.standings, name, commit)
    files = {MANUAL: manual_html.encode("utf-8")}
    chromium = None
    if options.pdf:
        from fmbuild.editions.pdf import render_pdf

        log("printing the manual to PDF ...")
        files[MANUAL_PDF], chromium = render_pdf(manual_html, commit)
    manifest = build_manifest(config=config, vault=vault, graph=graph, readiness=readiness, name=name,
                              commit=commit, previous=previous.name if previous else None, files=files)
    if chromium is not None:
        manifest["versions"]["chromium"] = chromium
    if dirty:
        manifest["uncommitted"] = dirty
    log_entry = changes.compare(previous.manifest if previous else None, manifest)
    changelog_md = changes.to_markdown(log_entry).encode("utf-8")
    changelog_json = changes.to_json_bytes(log_entry)
    for file_name, data in ((CHANGELOG_MD, changelog_md), (CHANGELOG_JSON, changelog_json)):
        manifest["files"][file_name] = {"sha256": sha256(data), "bytes": len(data)}
    manifest["files"] = dict(sorted(manifest["files"].items()))

    folder = write_edition(root, name, {
        **files,
        MANIFEST: manifest_bytes(manifest),
        CHANGELOG_MD: changelog_md,
        CHANGELOG_JSON: changelog_json,
    })
    return CutResult(folder, manifest, log_entry, readiness)
