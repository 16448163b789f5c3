"""The vocabulary of the technique-to-control graph: node types, edge types, node ids.

Node ids: a note's vault-relative path (`techniques/evasion-fgsm.md`), `module:evidence/<name>`
for an evidence module, and the framework ID (`AML.T0043`, `LLM01`, `ML05`) for a framework
entry. Every node carries `type`; every edge carries `type` (also its key in the MultiDiGraph,
so two notes share at most one edge of each type).
"""

from __future__ import annotations

from enum import StrEnum


class EdgeType(StrEnum):
    MITIGATES = "mitigates"  # pattern -> technique, with the pattern's `use` sentence
    ENABLES = "enables"  # anti-pattern -> technique
    COVERS = "covers"  # playbook -> technique
    APPLIES = "applies"  # playbook -> pattern
    EVIDENCED_BY = "evidenced-by"  # note -> evidence module
    MAPS_TO = "maps-to"  # note -> framework entry
    LINKS_TO = "links-to"  # every other link between two notes


class NodeType(StrEnum):
    TECHNIQUE = "technique"
    PATTERN = "pattern"
    ANTI_PATTERN = "anti-pattern"
    PLAYBOOK = "playbook"
    SOURCE = "source"
    NOTE = "note"  # a note of no (or another) type
    MODULE = "module"
    FRAMEWORK = "framework"


NOTE_TYPES = frozenset({NodeType.TECHNIQUE, NodeType.PATTERN, NodeType.ANTI_PATTERN, NodeType.PLAYBOOK, NodeType.SOURCE})

# The controls of the manual (DESIGN: patterns and anti-patterns); only patterns mitigate.
CONTROL_TYPES = (NodeType.PATTERN, NodeType.ANTI_PATTERN)

# Edges a note declares in its frontmatter: field -> (edge type, note type that may declare
# it, note type it must point at, key holding the link inside a mapping item).
DECLARED_FIELDS: dict[str, tuple[EdgeType, NodeType, NodeType, str]] = {
    "mitigates": (EdgeType.MITIGATES, NodeType.PATTERN, NodeType.TECHNIQUE, "technique"),
    "enables": (EdgeType.ENABLES, NodeType.ANTI_PATTERN, NodeType.TECHNIQUE, "technique"),
    "covers": (EdgeType.COVERS, NodeType.PLAYBOOK, NodeType.TECHNIQUE, "technique"),
    "applies": (EdgeType.APPLIES, NodeType.PLAYBOOK, NodeType.PATTERN, "pattern"),
}

# Frontmatter fields holding framework IDs.
FRAMEWORK_FIELDS = ("atlas", "owasp_llm", "owasp_ml", "atlas_mitigations")

MODULE_PREFIX = "module:"


def node_type_of(note_type: str | None) -> NodeType:
    try:
        value = NodeType(note_type) if note_type else NodeType.NOTE
    except ValueError:
        return NodeType.NOTE
    return value if value in NOTE_TYPES else NodeType.NOTE


def normalize_module(module: str) -> str:
    """`./evidence/evasion-fgsm/` -> `evidence/evasion-fgsm` (POSIX, no leading ./, no trailing /)."""
    value = module.strip().replace("\\", "/")
    while value.startswith("./"):
        value = value[2:]
    return value.strip("/")


def module_node_id(module: str) -> str:
    return MODULE_PREFIX + normalize_module(module)


def is_note_node(attrs: dict[str, object]) -> bool:
    return attrs.get("type") not in (NodeType.MODULE, NodeType.FRAMEWORK)
