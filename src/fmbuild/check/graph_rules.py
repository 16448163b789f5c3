"""Consistency of the technique-to-control graph.

- `edge-invalid` (error): a `mitigates` / `enables` item that does not point at a technique, a
  `covers` item that does not point at a technique, an `applies` item that does not point at a
  pattern, a relation declared by the wrong type of note, or an item that names no note.
- `edge-deprecated` (warning): any edge from a live note to a deprecated one.
- `control-missing` (warning): a technique that no pattern mitigates, or a pattern that mitigates
  nothing.

A cycle of `covers` / `applies` (or of plain links) is fine and not reported. Broken and
ambiguous links are the link rules' to report; these rules skip them.
"""

from __future__ import annotations

from collections.abc import Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.graph.build import GraphBuilder
from fmbuild.graph.model import EdgeType, NodeType, is_note_node, node_type_of
from fmbuild.graph.queries import controls_of

_CACHE_KEY = "graph.builder"


def graph_builder(ctx: CheckContext) -> GraphBuilder:
    """The graph of the vault, built once per check run and shared by the rules."""
    builder = ctx.cache.get(_CACHE_KEY)
    if not isinstance(builder, GraphBuilder):
        builder = GraphBuilder(ctx.vault, ctx.config, ctx.resolver)
        builder.build()
        ctx.cache[_CACHE_KEY] = builder
    return builder


@rule("graph-edges")
def check_edges(ctx: CheckContext) -> Iterator[Diagnostic]:
    for checked in graph_builder(ctx).checked:
        declaration = checked.declaration
        if checked.problem is None or not ctx.wants(declaration.source):
            continue
        note = ctx.vault.notes[declaration.source]
        line = declaration.line or note.line_of(declaration.field)
        column = declaration.column or 1
        yield error(declaration.source, line, column, "edge-invalid", checked.problem)


@rule("graph-deprecated")
def check_deprecated(ctx: CheckContext) -> Iterator[Diagnostic]:
    graph = graph_builder(ctx).graph
    for source, target, key, attrs in graph.edges(keys=True, data=True):
        if not ctx.wants(source) or source == target:
            continue
        source_attrs, target_attrs = graph.nodes[source], graph.nodes[target]
        if not (is_note_node(source_attrs) and is_note_node(target_attrs)):
            continue
        if source_attrs.get("deprecated") or not target_attrs.get("deprecated"):
            continue
        note = ctx.vault.notes[target]
        successor = note.frontmatter.get("successor")
        if isinstance(successor, str) and successor.strip():
            advice = f"point it at the successor {successor.strip()} instead"
        else:
            reason = note.frontmatter.get("deprecated_reason")
            advice = f"it was retired ({reason.strip()}); drop the edge" if isinstance(reason, str) and reason.strip() else "drop or replace the edge"
        yield warning(
            source,
            int(attrs.get("line") or 1),
            int(attrs.get("column") or 1),
            "edge-deprecated",
            f"{key} edge to deprecated note {target}: {advice}",
        )


@rule("graph-coverage")
def check_coverage(ctx: CheckContext) -> Iterator[Diagnostic]:
    builder = graph_builder(ctx)
    graph = builder.graph
    wrong = {c.declaration.source for c in builder.checked if c.declaration.field == "mitigates" and c.problem}
    required = ctx.config.required_fields("pattern") if ctx.config is not None else ()
    for node, attrs in sorted(graph.nodes(data=True)):
        if not ctx.wants(node) or attrs.get("deprecated") or not is_note_node(attrs):
            continue
        note = ctx.vault.notes[node]
        if attrs.get("type") == NodeType.TECHNIQUE and not controls_of(graph, node):
            yield warning(
                node, 1, 1, "control-missing",
                "no pattern mitigates this technique: add it to a pattern's 'mitigates' "
                f"(- technique: \"[[{node[:-3]}]]\", use: why it helps), or write that pattern",
            )
        elif node_type_of(note.type) is NodeType.PATTERN and not any(
            key == EdgeType.MITIGATES for _s, _t, key in graph.out_edges(node, keys=True)
        ):
            if node in wrong:
                continue  # its items are wrong: edge-invalid already says so
            if "mitigates" in required and not note.frontmatter.get("mitigates"):
                continue  # absent or empty: field-missing already says so
            yield warning(
                node, note.line_of("mitigates"), 1, "control-missing",
                "this pattern mitigates nothing: list the techniques it counters under 'mitigates' "
                "(- technique: \"[[techniques/...]]\", use: why it helps)",
            )
