"""Writing what `fmbuild new` scaffolds: every file is created, never replaced, and a failure
half-way removes only what this call created."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fmbuild import frameworks
from fmbuild.errors import FmError
from fmbuild.scaffold.modules import MODULE_NAME, module_files
from fmbuild.scaffold.notes import (
    DEFAULT_CHAPTER,
    Edge,
    NoteSpec,
    fresh_id,
    render_note,
    slugify,
)

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault


class ScaffoldError(FmError):
    """A request `fmbuild new` cannot honour, said in one line with what to do instead."""


@dataclass
class NoteRequest:
    kind: str
    title: str
    chapter: int | None = None
    tags: list[str] = field(default_factory=list)
    atlas: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # --mitigates / --enables
    covers: list[str] = field(default_factory=list)
    applies: list[str] = field(default_factory=list)
    module: str | None = None  # reuse this existing module instead of creating one


@dataclass
class Created:
    files: list[Path]


class _Transaction:
    """Files and folders created so far, removed again if a later step fails."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.folders: list[Path] = []

    def folder(self, path: Path) -> None:
        try:
            path.mkdir(parents=False)
        except FileExistsError:
            raise ScaffoldError(f"{_shown(path)}: exists; nothing is overwritten") from None
        self.folders.append(path)

    def file(self, path: Path, text: str) -> None:
        try:
            with open(path, "x", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        except FileExistsError:
            raise ScaffoldError(f"{_shown(path)}: exists; nothing is overwritten (choose another title or name)") from None
        self.files.append(path)

    def undo(self) -> None:
        for path in reversed(self.files):
            path.unlink(missing_ok=True)
        for path in reversed(self.folders):
            shutil.rmtree(path, ignore_errors=True)


def _shown(path: Path) -> str:
    """A path as the user would type it from here."""
    try:
        return os.path.relpath(path, Path.cwd())
    except ValueError:
        return str(path)


def _check_title(title: str) -> str:
    title = title.strip()
    if not title or "\n" in title or "\r" in title:
        raise ScaffoldError("the title must be one non-empty line, e.g. \"Model extraction through the API\"")
    if not slugify(title):
        raise ScaffoldError(f"{title!r} gives no file name: use some letters or digits")
    return title


def _module_name(name: str) -> str:
    if not MODULE_NAME.match(name):
        raise ScaffoldError(f"{name!r} is not a module name: lower-case letters, digits and '-', e.g. evasion-fgsm")
    return name


def create_module(config: Config, name: str, title: str | None = None) -> Created:
    name = _module_name(name)
    root = config.evidence_root
    tx = _Transaction()
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = root / name
        tx.folder(folder)
        for file_name, text in module_files(name, title or name).items():
            tx.file(folder / file_name, text)
    except BaseException:
        tx.undo()
        raise
    return Created(tx.files)


def _note_target(vault: Vault, link: str, wanted: str, option: str) -> str:
    """An existing note of type `wanted`, as a vault path without '.md'."""
    from fmbuild.vault.resolve import Resolver

    raw = link.strip().removeprefix("[[").removesuffix("]]").split("|")[0]
    res = Resolver(vault).resolve_target(raw, "", suggest=True)
    if res.status == "ambiguous":
        raise ScaffoldError(f"{option} {link}: ambiguous, it could be {', '.join(res.candidates)}; give the folder too")
    note = vault.notes.get(res.path or "") if res.ok and res.is_note else None
    if note is None:
        hint = f"; did you mean {res.suggestion}?" if res.suggestion else ""
        raise ScaffoldError(f"{option} {link}: no such note{hint}")
    if note.type != wanted:
        raise ScaffoldError(f"{option} {link}: {note.path} is a {note.type or 'note of no type'}, not a {wanted}")
    return note.path[:-3]


def _atlas(ids: list[str]) -> list[str]:
    found = []
    for raw in ids:
        entry = frameworks.lookup(raw)
        if entry is None or entry.framework != frameworks.ATLAS or entry.kind != "technique":
            close = ", ".join(e.id for e in frameworks.suggest(raw) if e.kind == "technique")
            raise ScaffoldError(f"--atlas {raw}: not a MITRE ATLAS technique ID" + (f" (did you mean {close}?)" if close else
                                " (e.g. AML.T0043; see atlas.mitre.org)"))
        found.append(entry.id)
    return found


def build_spec(config: Config, vault: Vault, request: NoteRequest, today: dt.date | None = None) -> tuple[NoteSpec, bool]:
    """The note to write, and whether a module must be created for it."""
    kind = request.kind
    if kind not in config.types:
        raise ScaffoldError(f"fmbuild.toml has no note type {kind!r} (types: {', '.join(config.types)})")
    title = _check_title(request.title)
    numbers = [c.number for c in config.chapters]
    chapter = request.chapter if request.chapter is not None else DEFAULT_CHAPTER[kind]
    if numbers and chapter not in numbers:
        if request.chapter is not None:
            raise ScaffoldError(f"--chapter {chapter}: not a chapter of the manual ({min(numbers)}–{max(numbers)})")
        chapter = numbers[0]
    for tag in request.tags:
        if config.tags and tag not in config.tags:
            raise ScaffoldError(f"--tag {tag}: not in the vocabulary of fmbuild.toml [tags]")
        if tag.startswith("type/"):
            raise ScaffoldError(f"--tag {tag}: the type tag comes from the kind of note")
    spec = NoteSpec(kind=kind, title=title, note_id=fresh_id(set(vault.by_id())),
                    date=(today or dt.date.today()).isoformat(), chapter=chapter,
                    chapter_marked=request.chapter is None, tags=sorted(set(request.tags)))
    if kind == "technique":
        if not request.atlas:
            raise ScaffoldError("a technique names its MITRE ATLAS technique: --atlas AML.T0043 (repeatable)")
        spec.atlas = _atlas(request.atlas)
    if kind in ("pattern", "anti-pattern"):
        option = "--mitigates" if kind == "pattern" else "--enables"
        if not request.targets:
            raise ScaffoldError(f"a{'n' if kind[0] == 'a' else ''} {kind} names the techniques it "
                                f"{'mitigates' if kind == 'pattern' else 'enables'}: {option} techniques/NAME (repeatable)")
        use = "Why this counters it: one sentence." if kind == "pattern" else "Why this opens the door to it: one sentence."
        spec.edges = [Edge(_note_target(vault, t, "technique", option), use) for t in request.targets]
    if kind == "playbook":
        spec.covers = [_note_target(vault, t, "technique", "--covers") for t in request.covers]
        spec.applies = [_note_target(vault, p, "pattern", "--applies") for p in request.applies]
    create = False
    if kind == "reference" and request.module is not None:  # evidence of its own is optional
        name = request.module
        if not (config.evidence_root / name).exists():
            raise ScaffoldError(f"--module {name}: no folder {config.evidence.path}/{name} (create it with: fmbuild new module {name})")
        spec.module = f"{config.evidence.path.strip('/')}/{name}"
    if kind in ("technique", "pattern", "anti-pattern"):
        name = request.module or slugify(title)
        exists = (config.evidence_root / name).exists()
        if request.module is not None and not exists:
            raise ScaffoldError(f"--module {name}: no folder {config.evidence.path}/{name} (create it with: fmbuild new module {name})")
        if request.module is None:
            name = _module_name(name)
            if exists:
                raise ScaffoldError(f"{config.evidence.path}/{name} exists: pass --module {name} to back the note with it, "
                                    "or choose another title")
            create = True
        spec.module = f"{config.evidence.path.strip('/')}/{name}"
    return spec, create


def create_note(config: Config, vault: Vault, request: NoteRequest, today: dt.date | None = None) -> Created:
    if request.kind not in config.types:
        raise ScaffoldError(f"fmbuild.toml has no note type {request.kind!r} (types: {', '.join(config.types)})")
    folder = config.vault_path / config.types[request.kind].folder
    path = folder / f"{slugify(_check_title(request.title))}.md"
    if os.path.lexists(path):
        raise ScaffoldError(f"{_shown(path)}: exists; nothing is overwritten (choose another title)")
    spec, create_mod = build_spec(config, vault, request, today)
    tx = _Transaction()
    try:
        if create_mod and spec.module is not None:
            name = spec.module.rsplit("/", 1)[-1]
            tx.files += create_module(config, name, spec.title).files
            tx.folders.append(config.evidence_root / name)
        folder.mkdir(parents=True, exist_ok=True)
        tx.file(path, render_note(spec))
    except BaseException:
        tx.undo()
        raise
    return Created(tx.files)
