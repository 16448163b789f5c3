"""The relations a note declares, checked against the notes they reach: no networkx here.

`GraphBuilder` turns the valid declarations into typed edges; `fmbuild check` reads the same
`CheckedDeclaration`s without building a graph (importing and filling networkx would cost
more than every other rule of a 10,000-note check together).
"""

from __future__ import annotations

from dataclasses import dataclass

from fmbuild.graph.model import DECLARED_FIELDS, EdgeType, NodeType, node_type_of
from fmbuild.graph.relations import (
    Declaration,
    LinkResolver,
    frontmatter_declarations,
    table_declarations,
)
from fmbuild.graph.resolving import resolve_note
from fmbuild.vault.model import Note, Vault


@dataclass(frozen=True, slots=True)
class CheckedDeclaration:
    """A declaration and what became of it: the note it reaches and the edge it makes."""

    declaration: Declaration
    target: str | None  # the note path the link reaches (None: broken, ambiguous, attachment)
    edge: EdgeType | None  # the typed edge it makes, None when it makes none
    problem: str | None  # why it makes no typed edge although it reaches a note


def note_declarations(note: Note) -> list[Declaration]:
    """Everything `note` declares: frontmatter relations, and a playbook's table links."""
    declarations = frontmatter_declarations(note)
    if node_type_of(note.type) is NodeType.PLAYBOOK and note.table_rows:
        # The parser found which lines are table body rows (outside code).
        declarations += table_declarations(note, set(note.table_rows))
    return declarations


def check_declarations(vault: Vault, resolver: LinkResolver, note: Note) -> list[CheckedDeclaration]:
    return [check_declaration(vault, resolver, note, d) for d in note_declarations(note)]


def check_declaration(vault: Vault, resolver: LinkResolver, note: Note, declaration: Declaration) -> CheckedDeclaration:
    if declaration.link is None:
        return CheckedDeclaration(declaration, None, None, declaration.problem)
    target = resolve_note(resolver, vault, declaration.link, note)
    if target is None:
        if declaration.field != "table" and not declaration.link.raw.startswith("[["):
            # A bare path is no link to the link rules: say it here.
            problem = (
                f"{declaration.field}[{declaration.index}]: {declaration.link.raw!r} names no note; "
                f"write it as a link, e.g. \"[[{declaration.link.target}]]\""
            )
            return CheckedDeclaration(declaration, None, None, problem)
        return CheckedDeclaration(declaration, None, None, None)  # the link rules report it
    target_type = node_type_of(vault.notes[target].type)
    if declaration.type is None:  # a table link: its target's type decides
        edge = {NodeType.TECHNIQUE: EdgeType.COVERS, NodeType.PATTERN: EdgeType.APPLIES}.get(target_type)
        return CheckedDeclaration(declaration, target, edge, None)
    _edge, source_type, wanted, _key = DECLARED_FIELDS[declaration.field]
    note_type = node_type_of(note.type)
    if note_type is not source_type:
        problem = (
            f"'{declaration.field}' is declared by {_a(source_type)} note, but this note is "
            f"{_a(note_type)} ({_tag_hint(note_type)})"
        )
        return CheckedDeclaration(declaration, target, None, problem)
    if target_type is not wanted:
        problem = (
            f"'{declaration.field}' must point at {_a(wanted)} note, but {declaration.link.raw} "
            f"is {_a(target_type)} ({target})"
        )
        return CheckedDeclaration(declaration, target, None, problem)
    return CheckedDeclaration(declaration, target, declaration.type, None)


def _a(node_type: NodeType) -> str:
    word = str(node_type)
    return ("an " if word[0] in "aeiou" else "a ") + word


def _tag_hint(node_type: NodeType) -> str:
    return "no type/ tag" if node_type is NodeType.NOTE else f"type/{node_type}"
