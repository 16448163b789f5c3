"""Links, embeds, headings and block references: every one must land (any Obsidian vault)."""

from __future__ import annotations

from typing import Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error
from fmbuild.vault.model import Link, LinkKind, Note
from fmbuild.vault.cache import load_suggestions, save_suggestions, suggestions_key
from fmbuild.vault.resolve import Resolution, canonical_heading, closest

_MAX_CANDIDATES_SHOWN = 5


@rule("links", needs_config=False)
def check_links(ctx: CheckContext) -> Iterator[Diagnostic]:
    resolver = ctx.resolver
    # First every link, without "did you mean"; then the suggestions for all broken targets in
    # one batch (and from the cache when the vault's files are the same as last time).
    notes = (n for n in ctx.vault.notes.values() if ctx.wants(n.path))
    resolved = list(resolver.failures(notes))
    broken = {res.looked_for for _, _, res in resolved if res.looked_for is not None}
    if broken:
        _suggest(ctx, broken)
    for note, link, res in resolved:
        if res.status == "ok":
            if res.heading_ok is False:
                yield _heading_missing(ctx, note, link, res)
            if res.block_ok is False:
                yield _block_missing(ctx, note, link, res)
        elif res.escapes:
            yield error(note.path, link.line, link.column, "path-escape",
                        f"{link.raw} points outside the vault: link to a note inside it")
        elif res.status == "ambiguous":
            yield _ambiguous(note, link, res)
        else:
            yield _broken(note, link, resolver.suggest(res.looked_for or link.target))


def _suggest(ctx: CheckContext, targets: set[str]) -> None:
    vault = ctx.vault
    resolver = ctx.resolver
    key = None
    if vault.cache_dir is not None:
        key = suggestions_key([*vault.notes, *vault.attachments, *vault.unparsed])
        resolver.suggestion_memo.update(load_suggestions(vault.cache_dir, key))
    missing = [t for t in targets if t.lower() not in resolver.suggestion_memo]
    if missing:
        resolver.prime_suggestions(sorted(missing))
        if vault.cache_dir is not None and key is not None:
            save_suggestions(vault.cache_dir, key, resolver.suggestion_memo)


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
    shown = res.candidates[:_MAX_CANDIDATES_SHOWN]
    more = len(res.candidates) - len(shown)
    listing = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    first = shown[0][:-3] if shown[0].endswith(".md") else shown[0]
    return error(
        note.path, link.line, link.column, "link-ambiguous",
        f"{link.raw}{_where(link)}: '{link.target}' matches {len(res.candidates)} files ({listing}); "
        f"write the path, e.g. {_as_link(link, first)}",
    )


def _heading_missing(ctx: CheckContext, note: Note, link: Link, res: Resolution) -> Diagnostic:
    target = ctx.vault.notes[res.path or ""]
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


def _block_missing(ctx: CheckContext, note: Note, link: Link, res: Resolution) -> Diagnostic:
    target = ctx.vault.notes[res.path or ""]
    name = "this note" if target.path == note.path else f"'{target.path}'"
    message = f"{link.raw}{_where(link)}: {name} has no block '^{link.block}'"
    ids = [b.id for b in target.blocks]
    best = closest((link.block or "").lower(), [i.lower() for i in ids])
    if best is not None:
        message += f"; did you mean '#^{best}'?"
    else:
        message += "; mark the paragraph with ' ^" + (link.block or "id") + "' at its end"
    return error(note.path, link.line, link.column, "block-missing", message)
