"""Links, embeds, headings and block references: every one must land (any Obsidian vault).

Findings are kept between runs (`.fmbuild/links-cache.bin`): a note's link findings depend only
on its own text, on the set of files in the vault (what a name resolves to, what is ambiguous,
what "did you mean" says) and on the text of the notes whose headings or blocks it links to. A
note whose text and whose targets are unchanged, in a vault with the same files, keeps its
findings without resolving anything; any other note is checked afresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, Severity, error
from fmbuild.vault.cache import fingerprint, read_plain, write_plain
from fmbuild.vault.load import worker_count
from fmbuild.vault.model import Link, LinkKind, Note, Vault
from fmbuild.vault.resolve import Resolution, Resolver, canonical_heading, closest

RESULTS_FILE = "links-cache.bin"


@rule("links", needs_config=False)
def check_links(ctx: CheckContext) -> Iterator[Diagnostic]:
    vault = ctx.vault
    store = _ResultStore.open(vault)
    stale: list[Note] = []
    for note in vault.notes.values():
        if not ctx.wants(note.path):
            continue
        kept = store.findings(note, vault) if store is not None else None
        if kept is None:
            stale.append(note)
        else:
            yield from kept
    if not stale:
        return
    fresh = _check_in_parallel(vault, stale) if len(stale) >= PARALLEL_MIN else None
    if fresh is None:
        fresh = {
            path: (findings, _dependencies(ctx.resolver, vault.notes[path], vault))
            for path, findings in _check(ctx.resolver, stale).items()
        }
    for note in stale:
        yield from fresh[note.path][0]
    if store is not None:
        for note in stale:
            findings, deps = fresh[note.path]
            store.remember(note, deps, findings)
        store.save()


# Below this many notes to check, worker processes cost more than they save.
PARALLEL_MIN = 2000
_FORKED_VAULT: Vault | None = None  # what forked workers check (inherited, not sent)

_Fresh = dict[str, tuple[list[Diagnostic], list[tuple[str, str]]]]


def _check_in_parallel(vault: Vault, notes: list[Note]) -> _Fresh | None:
    """Check `notes` in forked workers that share the loaded vault; None when not possible."""
    global _FORKED_VAULT
    workers = worker_count(len(notes))
    if workers <= 1:
        return None
    paths = [n.path for n in notes]
    size = -(-len(paths) // workers)
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    _FORKED_VAULT = vault
    try:
        # Imported here: a warm run never starts workers and need not pay for these imports.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_check_chunk, chunks))
    except (OSError, RuntimeError, ValueError):
        return None  # no processes to be had: check here instead
    finally:
        _FORKED_VAULT = None
    fresh: _Fresh = {}
    for chunk in results:
        for path, found, deps in chunk:
            diags = [Diagnostic(path, line, col, Severity(sev), code, msg) for line, col, sev, code, msg in found]
            fresh[path] = (diags, deps)
    return fresh


def _check_chunk(paths: list[str]) -> list[tuple[str, list[tuple[Any, ...]], list[tuple[str, str]]]]:
    """Worker: findings and dependencies of some notes, as plain data."""
    vault = _FORKED_VAULT
    assert vault is not None
    resolver = Resolver(vault)
    notes = [vault.notes[p] for p in paths]
    out = []
    for path, findings in _check(resolver, notes).items():
        plain = [(d.line, d.column, d.severity.value, d.code, d.message) for d in findings]
        out.append((path, plain, _dependencies(resolver, vault.notes[path], vault)))
    return out


def _check(resolver: Resolver, notes: list[Note]) -> dict[str, list[Diagnostic]]:
    """Findings of each note. Every link is resolved first, without "did you mean"; then the
    suggestions for all broken targets are found in one batch."""
    found: dict[str, list[Diagnostic]] = {note.path: [] for note in notes}
    resolved = list(resolver.failures(notes))
    resolver.prime_suggestions({res.looked_for for _, _, res in resolved if res.looked_for is not None})
    for note, link, res in resolved:
        out = found[note.path]
        if res.status == "ok":
            if res.heading_ok is False:
                out.append(_heading_missing(resolver.vault, note, link, res))
            if res.block_ok is False:
                out.append(_block_missing(resolver.vault, note, link, res))
        elif res.escapes:
            out.append(error(note.path, link.line, link.column, "path-escape",
                             f"{link.raw} points outside the vault: link to a note inside it"))
        elif res.status == "ambiguous":
            out.append(_ambiguous(note, link, res))
        else:
            out.append(_broken(note, link, resolver.suggest(res.looked_for or link.target)))
    return found


def _dependencies(resolver: Resolver, note: Note, vault: Vault) -> list[tuple[str, str]]:
    """(path, sha256) of the other notes whose headings or blocks `note` links to."""
    deps: dict[str, str] = {}
    for link in note.links:
        if link.heading is None and link.block is None:
            continue
        res = resolver.resolve_target(link.target, note.path)
        if res.status == "ok" and res.is_note and res.path and res.path != note.path:
            target = vault.notes.get(res.path)
            deps[res.path] = target.sha256 if target is not None else ""
    return sorted(deps.items())


class _ResultStore:
    """Link findings per note, valid for one set of vault files and one fmbuild."""

    def __init__(self, path: Path, key: str, entries: dict[str, Any]) -> None:
        self.path = path
        self.key = key
        self.entries = entries
        self.dirty = False

    @classmethod
    def open(cls, vault: Vault) -> "_ResultStore | None":
        if vault.cache_dir is None:
            return None
        key = _vault_key(vault)
        path = vault.cache_dir / RESULTS_FILE
        content, _ = read_plain(path)
        entries: dict[str, Any] = {}
        if isinstance(content, dict) and content.get("key") == key and isinstance(content.get("notes"), dict):
            entries = content["notes"]
        return cls(path, key, entries)

    def findings(self, note: Note, vault: Vault) -> list[Diagnostic] | None:
        """The kept findings of `note`, or None when they may have changed (or look wrong)."""
        entry = self.entries.get(note.path)
        try:
            sha, deps, kept = entry  # type: ignore[misc]
            if not note.sha256 or sha != note.sha256:
                return None
            for path, dep_sha in deps:
                target = vault.notes.get(path)
                if (target.sha256 if target is not None else "") != dep_sha:
                    return None
            return [Diagnostic(note.path, line, col, Severity(sev), code, msg) for line, col, sev, code, msg in kept]
        except (TypeError, ValueError):
            return None

    def remember(self, note: Note, deps: list[tuple[str, str]], findings: list[Diagnostic]) -> None:
        if not note.sha256:
            return
        kept = [(d.line, d.column, d.severity.value, d.code, d.message) for d in findings]
        self.entries[note.path] = (note.sha256, deps, kept)
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            write_plain(self.path, {"key": self.key, "notes": self.entries})
            self.dirty = False


def _vault_key(vault: Vault) -> str:
    """Changes whenever a file appears, disappears or becomes (un)readable, or fmbuild changes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(fingerprint().encode())
    here = Path(__file__).resolve()
    for source in (here, here.parents[1] / "vault" / "resolve.py"):
        try:
            h.update(source.read_bytes())
        except OSError:
            h.update(source.name.encode())
    for group, paths in (("n", vault.notes), ("a", vault.attachments), ("u", vault.unparsed)):
        h.update(group.encode())
        for p in sorted(paths):
            h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _where(link: Link) -> str:
    return f" (in property '{link.field}')" if link.kind is LinkKind.PROPERTY and link.field else ""


def _as_link(link: Link, path: str) -> str:
    """Link text for `path` in the syntax the author used."""
    if link.kind is LinkKind.MARKDOWN:
        return f"({path}.md)" if "." not in path.rsplit("/", 1)[-1] else f"({path})"
    bang = "!" if link.kind is LinkKind.EMBED else ""
    return f"{bang}[[{path}]]"


def _broken(note: Note, link: Link, suggestion: str | None) -> Diagnostic:
    code = "embed-missing" if link.is_embed else "link-broken"
    what = "embedded file" if link.is_embed else "note or file"
    message = f"{link.raw}{_where(link)}: no {what} named '{link.target}' in the vault"
    if suggestion:
        message += f"; did you mean {_as_link(link, suggestion)}?"
    return error(note.path, link.line, link.column, code, message)


def _ambiguous(note: Note, link: Link, res: Resolution) -> Diagnostic:
    first = res.candidates[0][:-3] if res.candidates[0].endswith(".md") else res.candidates[0]
    return error(
        note.path, link.line, link.column, "link-ambiguous",
        f"{link.raw}{_where(link)}: '{link.target}' matches {len(res.candidates)} files "
        f"({', '.join(res.candidates)}); write the path, e.g. {_as_link(link, first)}",
    )


def _heading_missing(vault: Vault, note: Note, link: Link, res: Resolution) -> Diagnostic:
    target = vault.notes[res.path or ""]
    name = "this note" if target.path == note.path else f"'{target.path}'"
    message = f"{link.raw}{_where(link)}: {name} has no heading '{link.heading}'"
    wanted = canonical_heading((link.heading or "").split("#")[-1])
    by_canon = {canonical_heading(h.text): h.text for h in target.headings}
    best = closest(wanted, list(by_canon))
    if best is not None:
        message += f"; did you mean '#{by_canon[best]}'?"
    elif target.headings:
        message += "; its headings: " + ", ".join(h.text for h in target.headings[:8])
    return error(note.path, link.line, link.column, "heading-missing", message)


def _block_missing(vault: Vault, note: Note, link: Link, res: Resolution) -> Diagnostic:
    target = vault.notes[res.path or ""]
    name = "this note" if target.path == note.path else f"'{target.path}'"
    message = f"{link.raw}{_where(link)}: {name} has no block '^{link.block}'"
    ids = [b.id for b in target.blocks]
    best = closest((link.block or "").lower(), [i.lower() for i in ids])
    if best is not None:
        message += f"; did you mean '#^{best}'?"
    else:
        message += "; mark the paragraph with ' ^" + (link.block or "id") + "' at its end"
    return error(note.path, link.line, link.column, "block-missing", message)
