"""Where a note's links point, for the graph: the vault's resolver, notes only."""

from __future__ import annotations

from fmbuild.graph.relations import LinkResolver
from fmbuild.vault.model import Link, Note, Vault


def default_resolver(vault: Vault) -> LinkResolver:
    from fmbuild.vault.resolve import Resolver

    return Resolver(vault)


def resolve_note(resolver: LinkResolver, vault: Vault, link: Link, note: Note) -> str | None:
    """The path of the parsed note the link points at, or None (broken, ambiguous, an
    attachment, or a note that could not be read)."""
    resolution = resolver.resolve_link(link, note)
    path = getattr(resolution, "path", None)
    if getattr(resolution, "status", None) != "ok" or not path or path not in vault.notes:
        return None
    return str(path)
