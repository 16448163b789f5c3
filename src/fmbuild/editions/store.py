"""The `editions/` folder: valid names, the Editions it holds, and writing one atomically.

An Edition is immutable. Its files are written into a hidden staging folder beside the others
(`editions/.NAME.<random>.partial`), flushed to disk, and the folder is then renamed into place
in one step: an interrupted cut leaves either a whole Edition or none (at worst a hidden
staging folder, which nothing reads and `fmbuild edition list` reports).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmbuild.editions.errors import EditionError

EDITIONS_DIR = "editions"
MANIFEST = "manifest.json"
CHANGELOG_MD = "CHANGELOG.md"
CHANGELOG_JSON = "changelog.json"
MANUAL = "manual.html"
MANUAL_PDF = "manual.pdf"
SIGNATURE = "signature.json"
PARTIAL_SUFFIX = ".partial"
# The same rule the site applies to folder names (`fmbuild.site.editions`), kept short. ASCII
# only, so two names cannot differ in Unicode normalisation alone (`ｅ1`, `e\u0301` are refused).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEYS_FILE = "KEYS"  # editions/KEYS: the public keys the project trusts (`fmbuild.editions.keys`)
# Names a file system, the site or the editions folder already means something by.
DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
RESERVED = frozenset({"keys", "index", "index.html", "latest", "current", "assets", "search", "versions.json"})


@dataclass(frozen=True, slots=True)
class StoredEdition:
    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def date(self) -> str:
        return str(self.manifest.get("date") or "")

    @property
    def commit(self) -> str:
        return str(self.manifest.get("commit") or "")

    @property
    def signed(self) -> bool:
        return (self.folder / SIGNATURE).is_file()


def editions_root(project_root: Path) -> Path:
    return project_root / EDITIONS_DIR


def check_name(name: str) -> str:
    if not NAME.match(name) or name.endswith((PARTIAL_SUFFIX, ".")) or ".." in name:
        raise EditionError(
            f"{name!r} is not a usable Edition name: use ASCII letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (e.g. 2026.1)"
        )
    lowered = name.lower()
    if lowered in RESERVED or lowered in DEVICES or lowered.split(".")[0] in DEVICES:
        raise EditionError(f"{name!r} is a reserved name (a device name, or one the editions folder or the site uses); "
                           "choose another, e.g. 2026.1")
    return name


def check_new_name(root: Path, name: str) -> str:
    """A name for a new Edition: valid, and not the name of another one but for letter case
    (`E1` beside `e1` would be one folder on macOS and Windows, two on Linux)."""
    check_name(name)
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name != name and folder.name.lower() == name.lower():
                raise EditionError(f"Edition {folder.name} exists ({EDITIONS_DIR}/{folder.name}/): names are compared "
                                   f"without regard to case, so {name} cannot be cut beside it; choose another name")
    return name


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The one serialisation of a manifest: sorted keys, fixed indentation, UTF-8, final newline."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise EditionError(f"{_show(path)}: missing (not an Edition folder)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EditionError(f"{_show(path)}: cannot be read: {exc}", exit_code=1) from None
    if not isinstance(data, dict) or not isinstance(data.get("notes"), list):
        raise EditionError(f"{_show(path)}: not an fmbuild Edition manifest", exit_code=1)
    return data


def _show(path: Path) -> str:
    return f"{EDITIONS_DIR}/{path.parent.name}/{path.name}"


def find(root: Path, name: str) -> StoredEdition:
    check_name(name)
    folder = root / name
    if not folder.is_dir():
        known = ", ".join(e.name for e in list_editions(root)[0]) or "none yet"
        raise EditionError(f"no Edition named {name!r} in {EDITIONS_DIR}/ (Editions: {known})")
    return StoredEdition(name, folder, load_manifest(folder))


def list_editions(root: Path) -> tuple[list[StoredEdition], list[str]]:
    """Every Edition, oldest first (by date, then name), and a line for each folder that is not one."""
    found: list[StoredEdition] = []
    problems: list[str] = []
    if not root.is_dir():
        return found, problems
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            if folder.name.endswith(PARTIAL_SUFFIX):
                problems.append(f"{EDITIONS_DIR}/{folder.name}: left by an interrupted cut; delete it")
            continue
        if not folder.is_dir():
            continue
        try:
            check_name(folder.name)
            found.append(StoredEdition(folder.name, folder, load_manifest(folder)))
        except EditionError as exc:
            problems.append(exc.message)
    found.sort(key=lambda e: (e.date, e.name))
    return found, problems


def write_edition(root: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write the files as `root/name/` all at once; refuse when that name exists."""
    check_new_name(root, name)
    target = root / name
    if target.exists() or target.is_symlink():
        raise EditionError(f"Edition {name} exists ({EDITIONS_DIR}/{name}/): an Edition is never rewritten; cut a new name")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=PARTIAL_SUFFIX, dir=root))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; an Edition is for everyone
        for file_name, data in sorted(files.items()):
            _write_synced(staging / file_name, data)
        _fsync_dir(staging)
        if target.exists():  # someone else cut this name meanwhile
            raise EditionError(f"Edition {name} appeared while cutting; nothing was changed")
        os.rename(staging, target)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def add_file(folder: Path, file_name: str, data: bytes) -> None:
    """Add one file to an existing Edition (its signature) atomically, never replacing one."""
    tmp = folder / f".{file_name}.{os.getpid()}.tmp"
    try:
        _write_synced(tmp, data)
        os.link(tmp, folder / file_name)  # fails if the file exists: nothing is overwritten
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(folder)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
