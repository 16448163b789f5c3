"""Build the technique-to-control graph from the vault model, in one place.

    graph = build_graph(vault, config)            # networkx.MultiDiGraph

Nodes: every note (attrs `type`, `title`, `path`, `maturity`, `chapter`, `note_id`, `tags`,
`verified`, ...), every evidence module a note names, every framework entry a note cites.
Edges (attrs `type`, `line`, `column`, and `use` for mitigates / enables):

- `mitigates` pattern -> technique, `enables` anti-pattern -> technique, `covers` playbook ->
  technique, `applies` playbook -> pattern: declared once, on the control (its frontmatter, or a
  playbook's tables of wikilinks). A declaration that points at the wrong type of note is not a
  typed edge (check reports it as `edge-invalid`); its link stays a `links-to` edge.
- `evidenced-by` note -> module, `maps-to` note -> framework entry.
- `links-to` for every other link between two notes, one per ordered pair, only where no typed
  edge already joins them.

The reverse direction (a technique's controls) is derived from the graph (see `queries`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx

from fmbuild import frameworks
from fmbuild.graph.declarations import CheckedDeclaration, check_declarations
from fmbuild.graph.model import (
    FRAMEWORK_FIELDS,
    EdgeType,
    NodeType,
    module_node_id,
    node_type_of,
    normalize_module,
)
from fmbuild.graph.relations import Declaration, LinkResolver, declared_links
from fmbuild.graph.resolving import default_resolver, resolve_note
from fmbuild.graph.verification import evidence_verdict
from fmbuild.vault.model import LinkKind, Note, Vault

if TYPE_CHECKING:
    from fmbuild.config import Config


def build_graph(vault: Vault, config: Config | None, resolver: LinkResolver | None = None) -> nx.MultiDiGraph:
    return GraphBuilder(vault, config, resolver).build()


class GraphBuilder:
    def __init__(self, vault: Vault, config: Config | None, resolver: LinkResolver | None = None) -> None:
        self.vault = vault
        self.config = config
        self.resolver = resolver if resolver is not None else default_resolver(vault)
        self.graph = nx.MultiDiGraph(frameworks=frameworks.versions())
        # Every declaration, valid or not: check's graph rules report from this list.
        self.checked: list[CheckedDeclaration] = []

    def build(self) -> nx.MultiDiGraph:
        for path in sorted(self.vault.notes):
            self._add_note_node(self.vault.notes[path])
        for path in sorted(self.vault.notes):
            note = self.vault.notes[path]
            consumed = self._add_declared(note)
            self._add_evidence(note)
            self._add_framework_ids(note)
            self._add_links(note, consumed)
        return self.graph

    # --- nodes -----------------------------------------------------------------------------

    def _add_note_node(self, note: Note) -> None:
        node_type = node_type_of(note.type)
        chapter = note.frontmatter.get("chapter")
        attrs: dict[str, Any] = {
            "type": str(node_type),
            "title": note.title,
            "path": note.path,
            "maturity": note.maturity,
            "chapter": chapter if isinstance(chapter, int) and not isinstance(chapter, bool) else None,
            "note_id": note.id,
            "tags": sorted(set(note.tag_names)),
            "deprecated": note.maturity == "deprecated",
        }
        if note.evidence is not None or node_type in (NodeType.TECHNIQUE, NodeType.PATTERN, NodeType.ANTI_PATTERN):
            verdict = evidence_verdict(self.config, note)
            attrs["verified"] = verdict.verified
            attrs["evidence_status"] = verdict.status
            attrs["evidence_detail"] = verdict.detail
            attrs["verified_basis"] = verdict.basis
        self.graph.add_node(note.path, **attrs)

    def _module_node(self, module: str) -> str:
        node = module_node_id(module)
        if node not in self.graph:
            path = normalize_module(module)
            exists = None
            if self.config is not None:
                exists = (self.config.project_root / path).is_dir()
            self.graph.add_node(node, type=str(NodeType.MODULE), title=path.rsplit("/", 1)[-1], path=path, exists=exists)
        return node

    def _framework_node(self, entry: frameworks.Entry) -> str:
        if entry.id not in self.graph:
            self.graph.add_node(
                entry.id,
                type=str(NodeType.FRAMEWORK),
                title=entry.name,
                label=entry.label,
                framework=entry.framework,
                kind=entry.kind,
                url=entry.url,
                tactics=list(entry.tactics),
                parent=entry.parent,
            )
        return entry.id

    # --- edges -----------------------------------------------------------------------------

    def _add_declared(self, note: Note) -> set[int]:
        typed: list[Declaration] = []
        for checked in check_declarations(self.vault, self.resolver, note):
            self.checked.append(checked)
            if checked.edge is None or checked.target is None:
                continue
            declaration = checked.declaration
            typed.append(declaration)
            key = str(checked.edge)
            if self.graph.has_edge(note.path, checked.target, key):
                continue  # declared twice (frontmatter and table): the first declaration stands
            attrs: dict[str, Any] = {"type": key, "line": declaration.line, "column": declaration.column}
            attrs["origin"] = "table" if declaration.field == "table" else "frontmatter"
            if declaration.use:
                attrs["use"] = declaration.use
            self.graph.add_edge(note.path, checked.target, key=key, **attrs)
        # Links consumed by a typed edge are not also `links-to`; invalid ones stay links.
        return declared_links(typed)

    def _add_evidence(self, note: Note) -> None:
        evidence = note.evidence
        module = evidence.get("module") if evidence else None
        if not isinstance(module, str) or not normalize_module(module):
            return
        node = self._module_node(module)
        self.graph.add_edge(
            note.path, node, key=str(EdgeType.EVIDENCED_BY), type=str(EdgeType.EVIDENCED_BY), line=note.line_of("evidence"), column=1
        )

    def _add_framework_ids(self, note: Note) -> None:
        for field in FRAMEWORK_FIELDS:
            value = note.frontmatter.get(field)
            items = value if isinstance(value, list) else [value]
            for item in items:
                # Unknown IDs make no node: `check` reports them (framework-id-unknown).
                entry = frameworks.lookup(item) if isinstance(item, str) else None
                if entry is None:
                    continue
                node = self._framework_node(entry)
                key = str(EdgeType.MAPS_TO)
                if not self.graph.has_edge(note.path, node, key):
                    self.graph.add_edge(note.path, node, key=key, type=key, field=field, line=note.line_of(field), column=1)

    def _add_links(self, note: Note, consumed: set[int]) -> None:
        key = str(EdgeType.LINKS_TO)
        for link in note.links:
            if id(link) in consumed:
                continue
            target = resolve_note(self.resolver, self.vault, link, note)
            if target is None or target == note.path:
                continue
            existing = self.graph.get_edge_data(note.path, target) or {}
            if existing:
                if key in existing:
                    existing[key]["count"] += 1
                continue  # a typed edge already says more than a plain link
            attrs: dict[str, Any] = {"type": key, "line": link.line, "column": link.column, "count": 1}
            if link.kind is LinkKind.PROPERTY:
                attrs["field"] = link.field
            if link.is_embed:
                attrs["embed"] = True
            self.graph.add_edge(note.path, target, key=key, **attrs)

