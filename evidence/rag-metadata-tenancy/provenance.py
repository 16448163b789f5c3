"""Where a passage's provenance is read from, and what an attacker with write access to the store does.

`declared_source` is what many loaders do: take `source` from the document's YAML front matter, or
from a `Source: ...` header line, and fall back to the connector only when the document says
nothing. The document's author controls both. The signed path (Connector / verified from
retrieval-poisoning's ingest.py) takes the connector's own name and binds it with an HMAC to the
passage id and the body hash; `verify_hits` re-checks that signature on every retrieved passage
at query time, so an edit made in the store after ingestion is caught where it would be served.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

_HEADER = re.compile(r"\A[ \t]*source[ \t]*[:=][ \t]*([^\s]+)[ \t]*\n", re.IGNORECASE)


def declared_source(record: Any) -> str:
    """The source a metadata-reading loader would record: front matter, then a header line, then the connector."""
    if "source" in record.document_meta:
        return str(record.document_meta["source"])
    m = _HEADER.match(record.body)
    if m is not None:
        return m[1]
    return str(record.provenance)


def admit_by_declared_source(record: Any, allowlist: set[str]) -> bool:
    return declared_source(record) in allowlist


def save_store(path: Path, records: list[Any]) -> None:
    """The document store: one JSON line per record, as a vector store's payload table would hold it."""
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")


def load_store(path: Path, record_type: type) -> list[Any]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            fields = json.loads(line)
            records.append(record_type(**fields))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"store line {n}: not a record ({exc})") from None
    return records


def edit_body(record: Any, body: str) -> Any:
    """An attacker with write access to the store (not to the key) rewrites a trusted passage."""
    return replace(record, body=body)


def replay_tag(record: Any, provenance: str, donor: Any) -> Any:
    """Claim a trusted provenance and copy a genuine record's tag onto it."""
    return replace(record, provenance=provenance, tag=donor.tag)


def verify_hits(hits: list[Any], k: int, check: Callable[[Any], bool], on_reject: Callable[[Any], None]) -> list[Any]:
    """The first k hits whose signature still verifies; each one that does not is reported."""
    kept = []
    for r in hits:
        if check(r):
            kept.append(r)
            if len(kept) == k:
                break
        else:
            on_reject(r)
    return kept
