"""`fmbuild edition cut|list|diff|keygen|sign|verify`: frozen, signed Editions of the manual.

Exit codes: 0 done or verified; 1 not ready to cut (check errors, evidence that does not
stand) or an Edition that does not verify; 2 usage errors (a bad or existing name, a missing
key, a key inside the repository).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fmbuild.commands.common import EXIT_FINDINGS, EXIT_OK, project_config
from fmbuild.editions.errors import EditionError
from fmbuild.terminal import echo

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_KEY = Path("~/.config/fmbuild/edition-signing.key")


def handled(fn: F) -> F:
    """A disk or permission problem while writing an Edition becomes an EditionError (which
    the command group prints with its exit code, as it does every `FmError`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EditionError:
            raise
        except OSError as exc:
            raise EditionError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None

    return wrapper  # type: ignore[return-value]


def _editions_root() -> Path:
    from fmbuild.editions.store import editions_root

    return editions_root(project_config().project_root)


def _repository() -> Path | None:
    """The repository signing keys must stay out of: git's top level, else the project's folder
    (None outside any project: keygen works anywhere)."""
    from fmbuild.config import find_config
    from fmbuild.editions.gitinfo import repository_root

    config_path = find_config(Path.cwd())
    start = config_path.parent if config_path else Path.cwd()
    try:
        found = repository_root(start)
    except EditionError:  # git missing: fall back to the project folder
        found = None
    return found or (config_path.parent.resolve() if config_path else None)


@click.group("edition")
def command() -> None:
    """Cut, list, diff, sign and verify frozen Editions (editions/NAME/)."""


@command.command("cut")
@click.argument("name")
@click.option("--allow-unverified", is_flag=True,
              help="Cut even when some notes' evidence does not stand; they are marked in the Edition.")
@click.option("--allow-dirty", is_flag=True,
              help="Cut from a working tree with uncommitted changes (listed in the manifest).")
@click.option("--since", metavar="EDITION", help="Compare with this Edition (default: the latest one).")
@click.option("--pdf", is_flag=True, help="Also print the manual to manual.pdf (needs playwright and Chromium).")
@handled
def cut(name: str, allow_unverified: bool, allow_dirty: bool, since: str | None, pdf: bool) -> None:
    """Freeze the manual at the current commit as editions/NAME/."""
    from fmbuild.editions.cut import CutOptions, cut_edition
    from fmbuild.editions.store import check_name
    from fmbuild.vault.load import load_project

    check_name(name)
    config, vault = load_project()
    assert config is not None
    say = lambda m: echo(m, err=True)
    result = cut_edition(config, vault, name, CutOptions(allow_unverified, allow_dirty, since, pdf), log=say)
    for standing in result.readiness.unverified:
        say(f"warning: not verified at this Edition: {standing.path}: {standing.state}: {standing.detail}")
    m = result.manifest
    rel = os.path.relpath(result.folder, Path.cwd())
    against = f" against Edition {result.changelog.previous}" if result.changelog.previous else " (the first Edition)"
    echo(f"Edition {name} cut into {rel}/: {len(m['notes'])} notes, {len(m['modules'])} modules, "
               f"{len(m['edges'])} graph edges, commit {m['commit'][:12]} of {m['date']}; changelog{against}.")


@command.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handled
def list_(fmt: str) -> None:
    """List the Editions, oldest first."""
    from fmbuild.editions.store import list_editions

    editions, problems = list_editions(_editions_root())
    if fmt == "json":
        echo(json.dumps([{"name": e.name, "date": e.date, "commit": e.commit, "notes": len(e.manifest["notes"]),
                                "signed": e.signed, "previous": e.manifest.get("previous")} for e in editions],
                              indent=2, sort_keys=True))
    else:
        if not editions:
            echo("No Edition yet (cut one with: fmbuild edition cut NAME).")
        for e in editions:
            flags = ["signed" if e.signed else "unsigned"]
            if e.manifest.get("unverified"):
                flags.append(f"{len(e.manifest['unverified'])} unverified")
            echo(f"{e.name:14} {e.date:10}  {e.commit[:12]:12}  {len(e.manifest['notes']):4} notes  {', '.join(flags)}")
    for problem in problems:
        echo(f"warning: {problem}", err=True)


@command.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@handled
def diff(old: str, new: str, fmt: str) -> None:
    """What changed from Edition OLD to Edition NEW."""
    from fmbuild.editions import changelog as changes
    from fmbuild.editions.store import find

    root = _editions_root()
    result = changes.compare(find(root, old).manifest, find(root, new).manifest)
    if fmt == "json":
        echo(changes.to_json_bytes(result).decode("utf-8"), nl=False)
    else:
        echo(changes.to_markdown(result), nl=False)


@command.command("keygen")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=str(DEFAULT_KEY),
              show_default=True, help="Private key file (the public key goes beside it as FILE.pub).")
@click.option("--force", is_flag=True, help="Allow a key path inside the repository.")
@click.option("--pin", "pin_it", is_flag=True, help="Also pin the new public key in this project's editions/KEYS.")
@handled
def keygen(out: Path, force: bool, pin_it: bool) -> None:
    """Make an Ed25519 key pair for signing Editions (private key written 0600)."""
    from fmbuild.editions.keys import key_line
    from fmbuild.editions.signing import generate, load_public, refuse_inside

    out = out.expanduser()
    refuse_inside(out, _repository(), force, "the private key would be written")
    public, kid = generate(out)
    echo(f"private key: {out} (mode 0600; keep it out of the repository)")
    echo(f"public key:  {public} (key id {kid}; publish it so readers can run fmbuild edition verify --pubkey)")
    if pin_it:
        _pin(public)
    else:
        echo(f"pin it (commit editions/KEYS): {key_line(load_public(public), f'key {kid}')}")


def _pin(public_path: Path) -> None:
    from fmbuild.editions.keys import pin
    from fmbuild.editions.signing import key_id, load_public

    public = load_public(public_path)
    path = pin(_editions_root(), public, f"key {key_id(public)}")
    echo(f"pinned key {key_id(public)} in editions/{path.name}: commit it; edition verify now trusts this key")


@command.command("pin")
@click.argument("pubkey", type=click.Path(path_type=Path, dir_okay=False))
@handled
def pin_key(pubkey: Path) -> None:
    """Trust PUBKEY (a PEM public key) for this project's Editions: add it to editions/KEYS."""
    _pin(pubkey.expanduser())


@command.command("sign")
@click.argument("name")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The Ed25519 private key (PEM), from fmbuild edition keygen.")
@click.option("--force", is_flag=True, help="Replace an existing signature; allow a key inside the repository.")
@handled
def sign(name: str, key_path: Path, force: bool) -> None:
    """Sign Edition NAME's manifest (which lists every file's hash)."""
    from fmbuild.editions.signing import (
        load_private,
        loose_permissions,
        refuse_inside,
        signature_document,
    )
    from fmbuild.editions.store import MANIFEST, SIGNATURE, add_file, find

    key_path = key_path.expanduser()
    refuse_inside(key_path, _repository(), force, "the signing key is")
    edition = find(_editions_root(), name)
    key = load_private(key_path)
    if loose_permissions(key_path):
        echo(f"warning: {key_path} is readable by others; chmod 600 it", err=True)
    target = edition.folder / SIGNATURE
    if target.exists():
        if not force:
            raise EditionError(f"Edition {name} is already signed ({SIGNATURE}); pass --force to replace the signature")
        target.unlink()
    document = signature_document(key, (edition.folder / MANIFEST).read_bytes())
    add_file(edition.folder, SIGNATURE, document)
    kid = json.loads(document)["key_id"]
    echo(f"Edition {name} signed with key {kid} (editions/{name}/{SIGNATURE})")


@command.command("verify")
@click.argument("name")
@click.option("--pubkey", type=click.Path(path_type=Path, dir_okay=False),
              help="The public key the Edition must be signed with (default: the keys editions/KEYS pins).")
@click.option("--source", is_flag=True,
              help="Also check every note and record file the manifest hashes against the Edition's git commit.")
@click.option("--integrity-only", is_flag=True,
              help="With no key pinned or given: check the files against the manifest alone (proves nothing about who made it).")
@handled
def verify(name: str, pubkey: Path | None, source: bool, integrity_only: bool) -> None:
    """Re-hash every file Edition NAME's manifest lists and check its signature against a trusted key."""
    from fmbuild.editions.integrity import verify_edition, verify_sources
    from fmbuild.editions.keys import pinned_keys
    from fmbuild.editions.signing import load_public
    from fmbuild.editions.store import KEYS_FILE, find

    root = _editions_root()
    if pubkey:
        trusted, trusted_as = [load_public(pubkey.expanduser())], "the given key"
    else:
        trusted, trusted_as = pinned_keys(root), f"a key editions/{KEYS_FILE} pins:"
    edition = find(root, name)
    report = verify_edition(edition, trusted, trusted_as)
    if not trusted and not integrity_only:
        # Without a trusted key, anyone who can write the folder can re-sign or unsign it.
        report.problems.append(
            f"no trusted key: editions/{KEYS_FILE} pins none and --pubkey was not given, so an unsigned or "
            "re-signed Edition cannot be told from the real one; pin the project's key (fmbuild edition keygen "
            f"--pin, or add its line to editions/{KEYS_FILE}), pass --pubkey, or check the files alone with --integrity-only")
    if source:
        report.source_problems = verify_sources(edition, project_config().project_root)
    for problem in report.problems:
        echo(f"editions/{name}/{problem}")
    for problem in report.source_problems:
        echo(problem)
    if report.signature is not None and not report.signature.ok:
        echo(f"editions/{name}/{report.signature.message}")
    if not report.ok:
        echo(f"Edition {name} does NOT verify.", err=True)
        raise click.exceptions.Exit(EXIT_FINDINGS)
    files = ", ".join(report.checked)
    if source:
        echo(f"Edition {name}: every note and record file matches commit {edition.commit[:12]}.")
    if report.signature is None:
        echo(f"Edition {name}: {len(report.checked)} files match the manifest ({files}); "
                   "unsigned: this proves integrity against the manifest only, not who made it.")
    else:
        pinned = "" if trusted else " (key not pinned: pass --pubkey or pin it in editions/KEYS to check who signed)"
        echo(f"Edition {name}: {len(report.checked)} files match the manifest ({files}); "
                   f"{report.signature.message}{pinned}.")
    raise click.exceptions.Exit(EXIT_OK)
