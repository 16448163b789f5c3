"""Walk a vault folder, read every file safely, and build the `Vault` model.

Bad input never stops the walk: a symlink out of the vault, a file over the size limit, bytes
that are not UTF-8 and an unreadable file or folder each become one diagnostic on that file
(`Vault.problems`), and loading goes on with the rest. Dot-folders (`.obsidian`, `.fmbuild`,
`.git`) and the templates folder hold no notes.

Unchanged notes come from the parse cache; a cold load of a large vault parses in parallel.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from fmbuild.config import DEFAULT_MAX_FILE_BYTES, Config, ConfigError, find_config, load_config
from fmbuild.diagnostics import Diagnostic, error
from fmbuild.vault.cache import ParseCache, pack_note, unpack_note
from fmbuild.vault.model import Note, Vault

NOTE_SUFFIX = ".md"
RECORDS_FOLDER = "records"  # vault/records/<module>/: plots copied by `fmbuild verify --record` (records.VAULT_RECORDS)
# Below this many notes to parse, worker processes cost more than they save.
PARALLEL_THRESHOLD = 400


@dataclass(frozen=True, slots=True)
class FileSet:
    """Every file the walk found, before any note is read: enough to tell where a link path
    points (`Resolver.of_files`)."""

    notes: tuple[str, ...]  # every note file, whether or not it can be parsed
    attachments: frozenset[str]


# Work done on freshly parsed notes inside the parse workers, while each note is at hand: a
# factory gets the file set (in the parent, before the workers start) and returns a function
# from a batch of notes to one plain-data result per note (`Vault.analysis`).
NoteAnalyser = Callable[[list[Note]], list[Any]]
AnalyserFactory = Callable[[FileSet], NoteAnalyser]


@dataclass(slots=True)
class _File:
    path: str  # vault-relative, POSIX
    abspath: str
    size: int
    mtime_ns: int
    ctime_ns: int = 0
    inode: int = 0

    @property
    def stamp(self) -> tuple[int, int, int]:
        return (self.mtime_ns, self.ctime_ns, self.inode)


# --- finding the project -------------------------------------------------------------------------------


def load_project(
    start: Path | None = None,
    vault: Path | None = None,
    *,
    use_cache: bool = True,
    analyse: AnalyserFactory | None = None,
) -> tuple[Config | None, Vault]:
    """The configuration and the loaded vault.

    Without `vault`: `fmbuild.toml` is looked for from `start` (default: the current folder)
    upwards, and its vault is loaded. With `vault`: that folder is the vault; the configuration
    applies only when an `fmbuild.toml` above it names this very folder as its vault, otherwise
    the folder is checked as a plain Obsidian vault. Raises `ConfigError` on configuration
    errors and when there is nothing to load. `analyse`: see `load_vault`.
    """
    if vault is not None:
        root = Path(vault)
        if not root.exists():
            raise ConfigError(f"--vault {vault}: no such folder")
        if not root.is_dir():
            raise ConfigError(f"--vault {vault}: not a folder")
        root = root.resolve()
        config: Config | None = None
        config_path = find_config(root)
        if config_path is not None:
            candidate = load_config(config_path)
            if candidate.vault_path == root:
                config = candidate
        return config, load_vault(root, config, use_cache=use_cache, analyse=analyse)
    config_path = find_config(start or Path.cwd())
    if config_path is None:
        raise ConfigError(
            "no fmbuild.toml here or in any parent folder: run inside the project, "
            "or pass --vault DIR to check any Obsidian vault"
        )
    config = load_config(config_path)
    if not config.vault_path.is_dir():
        raise ConfigError(f"{config_path.name}: [vault].path: {config.vault_path} is not a folder")
    return config, load_vault(config.vault_path, config, use_cache=use_cache, analyse=analyse)


# --- loading ------------------------------------------------------------------------------------------


def load_vault(
    root: Path, config: Config | None, *, use_cache: bool = True, analyse: AnalyserFactory | None = None
) -> Vault:
    """The vault under `root`. With `analyse`, every note parsed in this run (not those the
    cache held) is also handed to the analyser it makes, in the worker that parsed it, and the
    results land in `Vault.analysis`."""
    root = Path(root).resolve()
    max_bytes = config.max_file_bytes if config is not None else DEFAULT_MAX_FILE_BYTES
    templates = config.templates if config is not None else _obsidian_templates_folder(root)
    walker = _Walker(root, templates, max_bytes)
    walker.walk()

    # Loading builds hundreds of thousands of long-lived objects; the cyclic garbage collector
    # would walk them again and again as they pile up (it tripled the warm load time). The
    # model holds no reference cycles, so pausing the collector loses nothing, and freezing
    # the result keeps later collections (while rules run) from walking it at all.
    collecting = gc.isenabled()
    gc.disable()
    try:
        cache: ParseCache | None = None
        if use_cache:
            cache = ParseCache.for_vault(config.project_root if config is not None else root, root)
            cache.load()
        vault = _load(root, config, walker, cache, analyse)
    finally:
        if collecting:
            gc.enable()
    gc.freeze()
    return vault


def _load(
    root: Path, config: Config | None, walker: "_Walker", cache: ParseCache | None, analyse: AnalyserFactory | None
) -> Vault:
    notes: dict[str, Note] = {}
    analysis: dict[str, Any] = {}
    problems = list(walker.problems)
    unparsed = set(walker.unparsed)
    to_parse: list[_File] = []
    for f in walker.notes:
        note = cache.get(f.path, f.size, f.stamp, f.abspath) if cache is not None else None
        if note is not None:
            notes[f.path] = note
        else:
            to_parse.append(f)

    # Made only when there is something to parse (in this process: forked workers inherit it).
    analyser = analyse(walker.file_set()) if analyse is not None and to_parse else None
    for f, outcome, result in _parse_all(to_parse, analyser):
        if result is not None:
            analysis[f.path] = result
        if isinstance(outcome, Diagnostic):
            problems.append(outcome)
            unparsed.add(f.path)
            if cache is not None:
                cache.put(f.path, f.size, f.stamp, None)
            continue
        note, packed = outcome
        notes[f.path] = note
        if cache is not None:
            cache.put(f.path, f.size, f.stamp, packed)

    if cache is not None:
        cache.retain({f.path for f in walker.notes})
        cache.save()

    return Vault(
        root=root,
        notes={path: notes[path] for path in sorted(notes)},
        attachments=walker.attachments,
        problems=problems,
        config=config,
        folders=walker.folders,
        unparsed=unparsed,
        cache_dir=cache.path.parent if cache is not None else None,
        analysis=analysis,
    )


def read_note_text(vault: Vault, path: str) -> str:
    """The text of a note (for stages that render it), decoded as the parser decoded it."""
    data = (vault.root / path).read_bytes()
    text = data.decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# --- reading and parsing one file ---------------------------------------------------------------------


def parse_note(path: str, text: str, *, sha256: str = "", size: int = 0) -> Note:
    """`fmbuild.vault.parse.parse_note`, imported when first needed: the parser and YAML
    cost a run that finds every note in the cache more than a tenth of its time to import."""
    from fmbuild.vault.parse import parse_note as parse

    return parse(path, text, sha256=sha256, size=size)

_Outcome = Diagnostic | tuple[Note, Any]


def _read_and_parse(path: str, abspath: str) -> Diagnostic | tuple[Note, Any]:
    try:
        with open(abspath, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return error(path, 0, 0, "file-unreadable", f"cannot read this file: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _encoding_problem(path, data, exc)
    note = parse_note(path, text, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return note, pack_note(note)


def _encoding_problem(path: str, data: bytes, exc: UnicodeDecodeError) -> Diagnostic:
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
    byte = data[exc.start]
    return error(
        path, line, column, "encoding",
        f"not valid UTF-8 (byte 0x{byte:02x} at offset {exc.start}): re-save the file as UTF-8",
    )


_WORKER_ANALYSER: NoteAnalyser | None = None  # what forked parse workers run on each batch (inherited)


def _analysed(outcomes: list[_Outcome], analyser: NoteAnalyser | None) -> list[Any]:
    """The analyser's result for each outcome (None for files that did not become notes)."""
    if analyser is None:
        return [None] * len(outcomes)
    parsed = [o[0] for o in outcomes if not isinstance(o, Diagnostic)]
    results = iter(analyser(parsed) if parsed else ())
    return [None if isinstance(o, Diagnostic) else next(results) for o in outcomes]


def _parse_chunk(items: list[tuple[str, str]]) -> list[tuple[str, Any, Any]]:
    """Worker: parse files and hand back each note packed for the cache (bytes, cheap to send),
    with the analyser's result for it."""
    outcomes = [_read_and_parse(path, abspath) for path, abspath in items]
    out: list[tuple[str, Any, Any]] = []
    for (path, _), outcome, result in zip(items, outcomes, _analysed(outcomes, _WORKER_ANALYSER)):
        if isinstance(outcome, Diagnostic):
            out.append((path, ("problem", outcome.line, outcome.column, outcome.code, outcome.message), None))
        else:
            note, packed = outcome
            out.append((path, ("note", packed) if packed is not None else ("raw", note), result))
    return out


def _parse_all(files: list[_File], analyser: NoteAnalyser | None = None) -> Iterable[tuple[_File, _Outcome, Any]]:
    global _WORKER_ANALYSER
    workers = worker_count(len(files), PARALLEL_THRESHOLD)
    if workers <= 1:
        yield from _parse_here(files, analyser)
        return
    by_path = {f.path: f for f in files}
    chunk = max(50, len(files) // (workers * 4))
    batches = [[(f.path, f.abspath) for f in files[i : i + chunk]] for i in range(0, len(files), chunk)]
    done = 0  # batches already handed on: a pool that fails later must not repeat them
    try:
        # Imported here: a warm run never starts workers and need not pay for these imports.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")
        _WORKER_ANALYSER = analyser
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                # Each batch is unpacked as soon as it arrives, while the workers parse the next:
                # the parent's unpacking no longer waits for the last batch.
                for batch in pool.map(_parse_chunk, batches):
                    decoded = [(*_decode_outcome(by_path[path], payload), result) for path, payload, result in batch]
                    done += 1
                    yield from decoded
        finally:
            _WORKER_ANALYSER = None
    except (OSError, RuntimeError, ValueError):
        # No processes to be had (sandbox, limits), or the pool broke: parse the rest here.
        for batch in batches[done:]:
            yield from _parse_here([by_path[path] for path, _ in batch], analyser)


def _parse_here(files: list[_File], analyser: NoteAnalyser | None) -> Iterable[tuple[_File, _Outcome, Any]]:
    """Parse in this process, handing the analyser batches of notes."""
    for i in range(0, len(files), 500):
        chunk = files[i : i + 500]
        outcomes = [_read_and_parse(f.path, f.abspath) for f in chunk]
        yield from zip(chunk, outcomes, _analysed(outcomes, analyser))


def _decode_outcome(f: _File, payload: tuple[Any, ...]) -> tuple[_File, _Outcome]:
    """A worker's plain-data answer for one file, back as a diagnostic or a note."""
    if payload[0] == "problem":
        _, line, column, code, message = payload
        return f, error(f.path, line, column, code, message)
    if payload[0] == "note":
        return f, (unpack_note(f.path, payload[1]), payload[1])
    return f, (payload[1], None)


def worker_count(n_items: int, threshold: int = 0) -> int:
    """Worker processes worth starting for `n_items` (1: do it here)."""
    if n_items < threshold or os.name != "posix":
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


# --- walking --------------------------------------------------------------------------------------------


def _obsidian_templates_folder(root: Path) -> str:
    """The templates folder an Obsidian vault declares in `.obsidian/templates.json`."""
    try:
        data = json.loads((root / ".obsidian" / "templates.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "templates"
    folder = data.get("folder") if isinstance(data, dict) else None
    return folder.strip("/") if isinstance(folder, str) and folder.strip("/") else "templates"


def _printable(name: str) -> bool:
    """Whether a file name decoded from the file system is real text (no stray bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Walker:
    def __init__(self, root: Path, templates: str, max_bytes: int) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.templates = templates.strip("/").lower()
        self.max_bytes = max_bytes
        self.notes: list[_File] = []
        self.attachments: set[str] = set()
        self.folders: set[str] = set()
        self.problems: list[Diagnostic] = []
        self.unparsed: set[str] = set()

    def walk(self) -> None:
        self._walk_dir(str(self.root), "")
        self.notes.sort(key=lambda f: f.path)

    def file_set(self) -> FileSet:
        notes = sorted({f.path for f in self.notes} | self.unparsed)
        return FileSet(tuple(notes), frozenset(self.attachments))

    def _inside(self, real: str) -> bool:
        return real == self.root_real or real.startswith(self.root_real + os.sep)

    def _walk_dir(self, abspath: str, rel: str) -> None:
        try:
            with os.scandir(abspath) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.problems.append(
                error(rel or ".", 0, 0, "file-unreadable", f"cannot read this folder: {exc.strerror or exc}")
            )
            return
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue  # .obsidian, .fmbuild, .git, .trash: not notes
            path = f"{rel}/{name}" if rel else name
            if not _printable(name):
                shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                self.problems.append(
                    error(shown, 0, 0, "encoding", "this file name is not valid UTF-8: rename it")
                )
                continue
            if path.lower() == self.templates:
                continue  # templates are not notes (the folder may be nested: meta/templates)
            try:
                if entry.is_symlink():
                    if not self._symlink(entry, path):
                        continue
                if entry.is_dir():
                    if entry.is_symlink():
                        continue  # a link to a folder inside the vault: its notes are walked already
                    self.folders.add(path)
                    self._walk_dir(entry.path, path)
                    continue
                if not entry.is_file():
                    continue  # sockets, fifos, devices
                st = entry.stat()
            except OSError as exc:
                self.problems.append(error(path, 0, 0, "file-unreadable", f"cannot read this file: {exc.strerror or exc}"))
                self._note_or_attachment_unparsed(path)
                continue
            if st.st_size > self.max_bytes:
                self.problems.append(
                    error(path, 0, 0, "file-too-large",
                          f"{st.st_size:,} bytes is over the limit of {self.max_bytes:,} "
                          "([vault].max_file_bytes): split the note or shrink the file")
                )
                self._note_or_attachment_unparsed(path)
                continue
            if name.endswith(".md") and path.lower().startswith(RECORDS_FOLDER + "/"):
                continue  # `verify --record`'s generated plots folder holds no notes (only its README)
            if name.endswith(".md"):
                self.notes.append(_File(path, entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
            else:
                self.attachments.add(path)

    def _note_or_attachment_unparsed(self, path: str) -> None:
        if path.endswith(".md"):
            self.unparsed.add(path)
        else:
            self.attachments.add(path)

    def _symlink(self, entry: os.DirEntry[str], path: str) -> bool:
        """Whether a symlink may be followed; reports one that leaves the vault or dangles."""
        real = os.path.realpath(entry.path)
        if not self._inside(real):
            self.problems.append(
                error(path, 0, 0, "path-escape",
                      "symlink points outside the vault; it is not read: copy the file into the vault instead")
            )
            return False
        if not os.path.exists(real):
            self.problems.append(error(path, 0, 0, "file-unreadable", "broken symlink: its target does not exist"))
            return False
        return True
