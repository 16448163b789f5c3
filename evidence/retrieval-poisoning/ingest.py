"""Where a passage's provenance comes from: the document's own metadata, or the connector that fetched it.

A document may open with YAML front matter (`source: python-docs`), and many ingestion pipelines
copy that into the passage's metadata. Anyone who writes the document writes that field, so an
allow-list reading it trusts the attacker's word. The alternative: the connector that fetched the
document (the docs mirror, the wiki sync, the upload endpoint) sets the provenance itself and signs
it with an HMAC under a key only the ingestion service holds, binding the passage id, the
provenance and the hash of the body. A label edited later in the store no longer verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from typing import Any

import yaml

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def split_front_matter(raw: str) -> tuple[dict[str, Any], str]:
    """(metadata, body): the front matter parsed safely; a document without one has no metadata."""
    m = _FRONT_MATTER.match(raw)
    if m is None:
        return {}, raw
    try:
        meta = yaml.safe_load(m[1])
    except yaml.YAMLError:
        meta = None
    return (meta if isinstance(meta, dict) else {}), raw[m.end():]


@dataclass(frozen=True)
class Record:
    pid: int
    connector: str  # the connector that fetched the document: set by the pipeline, not by the document
    document_meta: dict[str, Any]  # whatever the document's own front matter said
    body: str
    provenance: str  # the connector's label, as stored
    tag: str  # HMAC over (pid, provenance, sha256(body))


def _mac(key: bytes, pid: int, provenance: str, body: str) -> str:
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return hmac.new(key, f"{pid}\x1f{provenance}\x1f{digest}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Connector:
    name: str  # the provenance it stamps on everything it fetches
    key: bytes  # the ingestion service's signing key

    def ingest(self, pid: int, raw: str) -> Record:
        meta, body = split_front_matter(raw)
        return Record(pid, self.name, meta, body, self.name, _mac(self.key, pid, self.name, body))


def verified(record: Record, key: bytes) -> bool:
    return hmac.compare_digest(record.tag, _mac(key, record.pid, record.provenance, record.body))


def relabel(record: Record, provenance: str) -> Record:
    """What an attacker with write access to the document store (not to the key) can do."""
    return replace(record, provenance=provenance)


def admit_by_document_metadata(record: Record, allowlist: set[str]) -> bool:
    """The weak allow-list: the document's own `source` field, the connector only when it has none."""
    return str(record.document_meta.get("source", record.provenance)) in allowlist


def admit_by_signed_provenance(record: Record, allowlist: set[str], key: bytes) -> bool:
    """The strong allow-list: the connector's label, and only when its signature still verifies."""
    return verified(record, key) and record.provenance in allowlist
