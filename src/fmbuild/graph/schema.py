"""JSON Schema of `fmbuild graph --format json` (draft 2020-12), for consumers that validate
an exported graph before reading it."""

from __future__ import annotations

from typing import Any

from fmbuild.graph.model import EdgeType, NodeType

GRAPH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fmbuild technique-to-control graph",
    "type": "object",
    "required": ["directed", "multigraph", "frameworks", "nodes", "edges"],
    "properties": {
        "directed": {"const": True},
        "multigraph": {"const": True},
        "frameworks": {"type": "object", "additionalProperties": {"type": "string"}},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "title"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "type": {"enum": [str(t) for t in NodeType]},
                    "title": {"type": "string"},
                    "path": {"type": "string"},
                    "maturity": {"type": "string"},
                    "chapter": {"type": "integer"},
                    "note_id": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "deprecated": {"type": "boolean"},
                    "verified": {"type": "boolean"},
                    "evidence_status": {"enum": ["passing", "failing", "stale", "none"]},
                    "evidence_detail": {"type": "string"},
                    "verified_basis": {"enum": ["record", "maturity"]},
                    "exists": {"type": "boolean"},
                    "framework": {"enum": ["atlas", "owasp-llm", "owasp-llm-2026", "owasp-ml"]},
                    "kind": {"enum": ["technique", "mitigation", "tactic", "risk"]},
                    "label": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "tactics": {"type": "array", "items": {"type": "string"}},
                    "parent": {"type": "string"},
                },
            },
        },
        "edges": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["source", "target", "type"],
                "properties": {
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                    "type": {"enum": [str(t) for t in EdgeType]},
                    "use": {"type": "string"},
                    "line": {"type": "integer", "minimum": 0},
                    "column": {"type": "integer", "minimum": 0},
                    "origin": {"enum": ["frontmatter", "table"]},
                    "field": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1},
                    "embed": {"type": "boolean"},
                },
            },
        },
    },
}
