"""The output folder: which folders a build may write, and the marker that makes it ours.

A build deletes only inside its output folder, and only when that folder is empty or carries
the marker a previous build left. It refuses the project root, the vault, the evidence and
editions folders, any parent of those, and anything inside the vault.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fmbuild import __version__
from fmbuild.errors import FmError

MARKER = ".fmbuild-site"


class OutputError(FmError):
    """The output folder cannot be used; the message says why and what to do."""


def check_output(output: Path, protected: dict[str, Path], vault_root: Path) -> Path:
    """The resolved output folder, or OutputError when writing there could destroy something."""
    out = output.expanduser().resolve()
    resolved = {what: path.resolve() for what, path in protected.items()}
    for what, path in resolved.items():  # "is the project root" says more than "contains the vault"
        if out == path:
            raise OutputError(f"output folder {out} is the {what}: choose a folder of its own, e.g. site/")
    for what, path in resolved.items():
        if out in path.parents:
            raise OutputError(f"output folder {out} contains the {what}: choose a folder of its own, e.g. site/")
    vault = vault_root.resolve()
    if vault in out.parents:
        raise OutputError(f"output folder {out} is inside the vault: Obsidian would index the site; write it elsewhere")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise OutputError(
            f"output folder {out} is not empty and holds no previous fmbuild site ({MARKER} missing): "
            "nothing in it is deleted; choose an empty or new folder"
        )
    return out


def prepare_output(out: Path) -> None:
    """Empty a checked output folder (ours, by its marker) and mark it before anything is written,
    so a build that stops halfway still leaves a folder the next build recognises."""
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    write_marker(out)


def write_marker(out: Path) -> None:
    (out / MARKER).write_text(json.dumps({"generator": "fmbuild", "version": __version__}) + "\n", encoding="utf-8")
