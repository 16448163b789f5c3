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
from typing import Any, Callable, Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, Severity, error
from fmbuild.vault.cache import fingerprint, read_plain, write_plain
from fmbuild.vault.load import FileSet, worker_count
from fmbuild.vault.model import Link, LinkKind, Note, Vault
from fmbuild.vault.resolve import Anchors, Resolution, Resolver, canonical_heading, closest

RESULTS_FILE = "links-cache.bin"
_SEVERITY = {s.value: s for s in Severity}
_SEVERITY_VALUE = {s: s.value for s in Severity}  # (an enum's .value is a slow property)


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
    # Notes parsed in this run had their link paths resolved by the parse workers
    # (`precheck`): only their headings and blocks in other notes are left to look up.
    prechecked = vault.analysis
    for path, (_found, _pending, anchors) in prechecked.items():
        ctx.resolver.know_anchors(path, Anchors.from_plain(anchors))
    fresh: _Fresh = {n.path: _finish(ctx.resolver, n, prechecked[n.path]) for n in stale if n.path in prechecked}
    rest = [n for n in stale if n.path not in fresh]
    if rest:
        checked = _check_in_parallel(vault, rest) if len(rest) >= PARALLEL_MIN else None
        fresh.update(checked if checked is not None else _check(ctx.resolver, rest))
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

# path -> (findings, the (path, sha256) of the other notes whose headings or blocks it links to)
_Fresh = dict[str, tuple[list[Diagnostic], list[tuple[str, str]]]]
# A note's links, half checked: (index of the link, line, column, severity, code, message) for
# the findings that need no other note; (index, line, column, target note, heading, block) for
# each link to a heading or block in another note; and the note's own `Anchors`, so that the
# parent need not work them out again (nor decode the note's headings).
_Prechecked = tuple[
    list[tuple[int, int, int, str, str, str]],
    list[tuple[int, int, int, str, str | None, str | None]],
    tuple[list[str], list[int], list[str]],
]


class LinkPrecheck:
    """For `load_vault(analyse=...)`: link paths resolve against the file set alone, so the
    parse workers check them while each note is at hand. The resolver made for that serves
    the rest of the check too (`resolver_for`): it knows the same files."""

    def __init__(self) -> None:
        self.resolver: Resolver | None = None

    def __call__(self, files: FileSet) -> Callable[[list[Note]], list[_Prechecked]]:
        self.resolver = resolver = Resolver.of_files(files.notes, files.attachments)
        return lambda notes: _precheck(resolver, notes)

    def resolver_for(self, vault: Vault) -> Resolver | None:
        """The resolver, now for the loaded `vault` (None when no note needed parsing)."""
        if self.resolver is not None:
            self.resolver.vault = vault
        return self.resolver


def _precheck(resolver: Resolver, notes: list[Note]) -> list[_Prechecked]:
    """Every finding of `notes` that needs no other note's content: broken, ambiguous and
    escaping links (with "did you mean", found for the whole batch at once) and headings or
    blocks the note itself lacks. Links into other notes' headings and blocks are left over."""
    global_memo = resolver._global_memo
    failed: list[tuple[list[Any], int, Note, Link, Resolution]] = []
    out: list[_Prechecked] = []
    for note in notes:
        path = note.path
        found: list[Any] = []
        pending: list[tuple[int, int, int, str, str | None, str | None]] = []
        for i, link in enumerate(note.links):
            res = global_memo.get(link.target)
            if res is None:
                res = resolver.resolve_target(link.target, path)
            if res.status != "ok":
                failed.append((found, i, note, link, res))
                continue
            if (link.heading is None and link.block is None) or not res.is_note:
                continue
            if res.path != path:
                pending.append((i, link.line, link.column, res.path or "", link.heading, link.block))
                continue
            anchored = resolver.anchor_found(path, link.heading, link.block, note)
            for d in _anchor_findings(note, note, link, anchored):
                found.append((i, d.line, d.column, d.severity.value, d.code, d.message))
        out.append((found, pending, resolver.anchors(note).plain()))
    resolver.prime_suggestions({res.looked_for for *_, res in failed if res.looked_for is not None})
    for found, i, note, link, res in failed:
        d = _failure(resolver, note, link, res)
        found.append((i, d.line, d.column, d.severity.value, d.code, d.message))
    for found, _pending, _anchors in out:
        found.sort(key=lambda item: item[0])  # back into link order (stable: heading, then block)
    return out


def _finish(resolver: Resolver, note: Note, prechecked: _Prechecked) -> tuple[list[Diagnostic], list[tuple[str, str]]]:
    """A note's findings and dependencies, from its precheck and the other notes' anchors."""
    found, pending, _anchors = prechecked
    path = note.path
    findings = [Diagnostic(path, line, col, _SEVERITY[sev], code, msg) for _i, line, col, sev, code, msg in found]
    if not pending:
        return findings, []
    notes = resolver.vault.notes
    anchor_found = resolver.anchor_found
    late: list[tuple[int, Diagnostic]] = []  # missing headings and blocks in other notes
    for i, line, column, target_path, heading, block in pending:
        found_there = anchor_found(target_path, heading, block)
        if False not in found_there:
            continue
        target = notes.get(target_path)
        if target is not None:
            late.extend((i, d) for d in _anchor_findings(target, note, _link_at(note, i, line, column), found_there))
    if late:  # into link order (stable: a heading before a block of the same link)
        items = sorted([*((item[0], d) for item, d in zip(found, findings)), *late], key=lambda item: item[0])
        findings = [d for _, d in items]
    targets = sorted({item[3] for item in pending})
    return findings, [(p, notes[p].sha256 if p in notes else "") for p in targets]


def _link_at(note: Note, index: int, line: int, column: int) -> Link:
    """The link a precheck named by its index (checked against its position)."""
    links = note.links
    if index < len(links) and links[index].line == line and links[index].column == column:
        return links[index]
    return next(link for link in links if link.line == line and link.column == column)


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
            diags = [Diagnostic(path, line, col, _SEVERITY[sev], code, msg) for line, col, sev, code, msg in found]
            fresh[path] = (diags, deps)
    return fresh


def _check_chunk(paths: list[str]) -> list[tuple[str, list[tuple[Any, ...]], list[tuple[str, str]]]]:
    """Worker: findings and dependencies of some notes, as plain data."""
    vault = _FORKED_VAULT
    assert vault is not None
    out = []
    for path, (findings, deps) in _check(Resolver(vault), [vault.notes[p] for p in paths]).items():
        plain = [(d.line, d.column, d.severity.value, d.code, d.message) for d in findings]
        out.append((path, plain, deps))
    return out


def _check(resolver: Resolver, notes: list[Note]) -> _Fresh:
    """Findings and dependencies of each note, checked here."""
    return {note.path: _finish(resolver, note, pre) for note, pre in zip(notes, _precheck(resolver, notes))}


def _failure(resolver: Resolver, note: Note, link: Link, res: Resolution) -> Diagnostic:
    """The finding for a link whose path does not land."""
    if res.escapes:
        return error(note.path, link.line, link.column, "path-escape",
                     f"{link.raw} points outside the vault: link to a note inside it")
    if res.status == "ambiguous":
        return _ambiguous(note, link, res)
    return _broken(note, link, resolver.suggest(res.looked_for or link.target))


def _anchor_findings(target: Note, note: Note, link: Link, found: tuple[bool | None, bool | None]) -> list[Diagnostic]:
    """`found`: `Resolver.anchor_found` for the link."""
    heading_ok, block_ok = found
    out = []
    if heading_ok is False:
        out.append(_heading_missing(target, note, link))
    if block_ok is False:
        out.append(_block_missing(target, note, link))
    return out


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
            return [Diagnostic(note.path, line, col, _SEVERITY[sev], code, msg) for line, col, sev, code, msg in kept]
        except (TypeError, ValueError):
            return None

    def remember(self, note: Note, deps: list[tuple[str, str]], findings: list[Diagnostic]) -> None:
        if not note.sha256:
            return
        kept = [(d.line, d.column, _SEVERITY_VALUE[d.severity], d.code, d.message) for d in findings]
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


AMBIGUOUS_SHOWN = 5  # a name 20,000 notes bear is one readable line, not 20,000 paths


def _some(candidates: list[str]) -> str:
    shown = ", ".join(candidates[:AMBIGUOUS_SHOWN])
    more = len(candidates) - AMBIGUOUS_SHOWN
    return f"{shown}, … and {more} more" if more > 0 else shown


def _ambiguous(note: Note, link: Link, res: Resolution) -> Diagnostic:
    first = res.candidates[0][:-3] if res.candidates[0].endswith(".md") else res.candidates[0]
    return error(
        note.path, link.line, link.column, "link-ambiguous",
        f"{link.raw}{_where(link)}: '{link.target}' matches {len(res.candidates)} files "
        f"({_some(res.candidates)}); write the path, e.g. {_as_link(link, first)}",
    )


def _heading_missing(target: Note, note: Note, link: Link) -> Diagnostic:
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


def _block_missing(target: Note, note: Note, link: Link) -> Diagnostic:
    name = "this note" if target.path == note.path else f"'{target.path}'"
    message = f"{link.raw}{_where(link)}: {name} has no block '^{link.block}'"
    ids = [b.id for b in target.blocks]
    best = closest((link.block or "").lower(), [i.lower() for i in ids])
    if best is not None:
        message += f"; did you mean '#^{best}'?"
    else:
        message += "; mark the paragraph with ' ^" + (link.block or "id") + "' at its end"
    return error(note.path, link.line, link.column, "block-missing", message)
