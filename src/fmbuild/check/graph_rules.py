"""Consistency of the technique-to-control graph.

- `edge-invalid` (error): a `mitigates` / `enables` item that does not point at a technique, a
  `covers` item that does not point at a technique, an `applies` item that does not point at a
  pattern, a relation declared by the wrong type of note, or an item that names no note.
- `edge-deprecated` (warning): any edge from a live note to a deprecated one.
- `control-missing` (warning): a technique that no pattern mitigates, or a pattern that mitigates
  nothing.

A cycle of `covers` / `applies` (or of plain links) is fine and not reported. Broken and
ambiguous links are the link rules' to report; these rules skip them.

The rules read the checked declarations (`fmbuild.graph.declarations`) and the vault model, not
a networkx graph: they ask for the same edges `fmbuild.graph.build.GraphBuilder` makes, but
only the few they need (typed edges, and plain links to deprecated notes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.graph.declarations import CheckedDeclaration, check_declarations
from fmbuild.graph.model import EdgeType, NodeType, node_type_of
from fmbuild.graph.resolving import resolve_note
from fmbuild.vault.model import Note, link_file_name

_CACHE_KEY = "graph.relations"


@dataclass
class Relations:
    """Every declaration of the vault, checked, and the typed edges the valid ones make."""

    checked: list[CheckedDeclaration] = field(default_factory=list)
    by_source: dict[str, list[CheckedDeclaration]] = field(default_factory=dict)
    mitigated_by: dict[str, set[str]] = field(default_factory=dict)  # technique -> live patterns


def relations(ctx: CheckContext) -> Relations:
    """The checked declarations of the vault, found once per check run and shared by the rules."""
    found = ctx.cache.get(_CACHE_KEY)
    if isinstance(found, Relations):
        return found
    found = Relations()
    notes = ctx.vault.notes
    for path in sorted(notes):
        note = notes[path]
        checked = check_declarations(ctx.vault, ctx.resolver, note)
        if not checked:
            continue
        found.checked.extend(checked)
        found.by_source[path] = checked
        if note.maturity == "deprecated":
            continue
        for item in checked:
            if item.edge is EdgeType.MITIGATES and item.target is not None:
                found.mitigated_by.setdefault(item.target, set()).add(path)
    ctx.cache[_CACHE_KEY] = found
    return found


@rule("graph-edges")
def check_edges(ctx: CheckContext) -> Iterator[Diagnostic]:
    for checked in relations(ctx).checked:
        declaration = checked.declaration
        if checked.problem is None or not ctx.wants(declaration.source):
            continue
        note = ctx.vault.notes[declaration.source]
        line = declaration.line or note.line_of(declaration.field)
        column = declaration.column or 1
        yield error(declaration.source, line, column, "edge-invalid", checked.problem)


@rule("graph-deprecated")
def check_deprecated(ctx: CheckContext) -> Iterator[Diagnostic]:
    notes = ctx.vault.notes
    deprecated = {path for path, note in notes.items() if note.maturity == "deprecated"}
    if not deprecated:
        return
    # A link can only reach a note that bears its last path component as file name: links
    # whose name matches no deprecated note are never resolved.
    names: set[str | None] = {_file_name(path) for path in deprecated}
    names |= {name[:-3] for name in names if name}
    names.add(None)  # `..` and the like: only resolving can say where they land
    found = relations(ctx)
    for path in sorted(notes):
        note = notes[path]
        if not ctx.wants(path) or path in deprecated:
            continue
        declared = found.by_source.get(path, [])
        # Whether any link can reach them is known without decoding every link of the note.
        scan_links = not names.isdisjoint(note.link_names)
        if not scan_links and not any(c.target in deprecated for c in declared):
            continue
        for target, key, line, column in _edges_to(ctx, note, declared, deprecated, names, scan_links):
            yield warning(path, line, column, "edge-deprecated",
                          f"{key} edge to deprecated note {target}: {_advice(notes[target])}")


def _edges_to(
    ctx: CheckContext,
    note: Note,
    checked: list[CheckedDeclaration],
    wanted: set[str],
    names: set[str | None],
    scan_links: bool = True,
) -> list[tuple[str, str, int, int]]:
    """(target, edge type, line, column) of the edges the graph holds from `note` to the notes
    in `wanted`, as `GraphBuilder` makes them: one typed edge per (target, type), the first
    declaration standing; one `links-to` per target, from the first other link, only where no
    typed edge joins the two."""
    edges: dict[str, list[tuple[str, int, int]]] = {}
    consumed: set[int] = set()
    for item in checked:
        if item.edge is None or item.target is None:
            continue
        consumed.add(id(item.declaration.link))
        kinds = edges.setdefault(item.target, [])
        if not any(key == item.edge for key, _l, _c in kinds):
            kinds.append((str(item.edge), item.declaration.line, item.declaration.column))
    for link in note.links if scan_links else ():
        if id(link) in consumed or link_file_name(link.target) not in names:
            continue
        target = resolve_note(ctx.resolver, ctx.vault, link, note)
        if target is None or target == note.path or target in edges:
            continue
        edges[target] = [(str(EdgeType.LINKS_TO), link.line, link.column)]
    return [
        (target, key, line or 1, column or 1)
        for target, kinds in edges.items()
        if target in wanted
        for key, line, column in kinds
    ]


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1].lower()


def _advice(target: Note) -> str:
    successor = target.frontmatter.get("successor")
    if isinstance(successor, str) and successor.strip():
        return f"point it at the successor {successor.strip()} instead"
    reason = target.frontmatter.get("deprecated_reason")
    if isinstance(reason, str) and reason.strip():
        return f"it was retired ({reason.strip()}); drop the edge"
    return "drop or replace the edge"


@rule("graph-coverage")
def check_coverage(ctx: CheckContext) -> Iterator[Diagnostic]:
    found = relations(ctx)
    wrong = {c.declaration.source for c in found.checked if c.declaration.field == "mitigates" and c.problem}
    required = ctx.config.required_fields("pattern") if ctx.config is not None else ()
    notes = ctx.vault.notes
    for path in sorted(notes):
        note = notes[path]
        if not ctx.wants(path) or note.maturity == "deprecated":
            continue
        node_type = node_type_of(note.type)
        if node_type is NodeType.TECHNIQUE and not found.mitigated_by.get(path):
            yield warning(
                path, 1, 1, "control-missing",
                "no pattern mitigates this technique: add it to a pattern's 'mitigates' "
                f"(- technique: \"[[{path[:-3]}]]\", use: why it helps), or write that pattern",
            )
        elif node_type is NodeType.PATTERN and not any(
            c.edge is EdgeType.MITIGATES and c.target is not None for c in found.by_source.get(path, ())
        ):
            if path in wrong:
                continue  # its items are wrong: edge-invalid already says so
            if "mitigates" in required and not note.frontmatter.get("mitigates"):
                continue  # absent or empty: field-missing already says so
            yield warning(
                path, note.line_of("mitigates"), 1, "control-missing",
                "this pattern mitigates nothing: list the techniques it counters under 'mitigates' "
                "(- technique: \"[[techniques/...]]\", use: why it helps)",
            )
