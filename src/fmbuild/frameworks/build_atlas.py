"""Regenerate `frameworks/data/atlas.json` from MITRE ATLAS's `dist/ATLAS.yaml`.

    python -m fmbuild.frameworks.build_atlas PATH/TO/ATLAS.yaml [--source TEXT] [--output FILE]

Reads every tactic, technique, sub-technique and mitigation of the first matrix (id, name,
tactic IDs, parent) and writes them in the shipped reference-list shape, with the release
`version` taken from the file itself, so the data can never claim a release it was not read
from. Works on a full `ATLAS.yaml` and on the committed extract
(`data/sources/ATLAS-<version>.extract.yaml`), which keeps the same keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fmbuild.frameworks.reference import ATLAS, atlas_url

DATA_DIR = Path(__file__).resolve().parent / "data"


class AtlasFormatError(Exception):
    """The YAML is not shaped like ATLAS.yaml; the message says what was expected."""


def _items(matrix: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = matrix.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AtlasFormatError(f"matrices[0].{key}: expected a list of mappings")
    for i, item in enumerate(value):
        if not isinstance(item.get("id"), str) or not isinstance(item.get("name"), str):
            raise AtlasFormatError(f"matrices[0].{key}[{i}]: needs string 'id' and 'name'")
    return value


def convert(data: Any, source: str) -> dict[str, Any]:
    """ATLAS.yaml (parsed) -> the reference-list document written to atlas.json."""
    if not isinstance(data, dict) or not isinstance(data.get("matrices"), list) or not data["matrices"]:
        raise AtlasFormatError("expected a mapping with a non-empty 'matrices' list (ATLAS.yaml 4.0+)")
    version = data.get("version")
    if not isinstance(version, (str, int, float)):
        raise AtlasFormatError("the file has no top-level 'version'")
    matrix = data["matrices"][0]
    entries: list[dict[str, Any]] = []
    for tactic in _items(matrix, "tactics"):
        entries.append(_entry(tactic["id"], tactic["name"], "tactic"))
    techniques = _items(matrix, "techniques")
    known = {t["id"] for t in techniques}
    for tech in techniques:
        parent = tech.get("subtechnique-of")
        if parent is not None and parent not in known:
            raise AtlasFormatError(f"{tech['id']}: parent {parent!r} is not a technique of the file")
        tactics = [str(t) for t in tech.get("tactics") or []]
        entries.append(_entry(tech["id"], tech["name"], "technique", tactics=tactics, parent=parent))
    for mitigation in _items(matrix, "mitigations"):
        entries.append(_entry(mitigation["id"], mitigation["name"], "mitigation"))
    ids = [e["id"] for e in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise AtlasFormatError(f"duplicate IDs: {', '.join(duplicates)}")
    return {
        "framework": ATLAS,
        "title": "MITRE ATLAS",
        "version": str(version),
        "source": source,
        "entries": entries,
    }


def _entry(
    entry_id: str, name: str, kind: str, tactics: list[str] | None = None, parent: str | None = None
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "name": " ".join(name.split()),
        "kind": kind,
        "tactics": tactics or [],
        "parent": parent,
        "url": atlas_url(entry_id, kind),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmbuild.frameworks.build_atlas", description=__doc__.split("\n")[0])
    parser.add_argument("atlas_yaml", type=Path, help="dist/ATLAS.yaml of a mitre-atlas/atlas-data release")
    parser.add_argument("--source", help="where the file came from (repository, path, commit)")
    parser.add_argument("--output", type=Path, default=DATA_DIR / "atlas.json")
    args = parser.parse_args(argv)
    try:
        data = yaml.safe_load(args.atlas_yaml.read_text(encoding="utf-8"))
        document = convert(data, args.source or f"mitre-atlas/atlas-data dist/ATLAS.yaml ({args.atlas_yaml.name})")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AtlasFormatError) as exc:
        print(f"build_atlas: error: {args.atlas_yaml}: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    counts = {kind: sum(e["kind"] == kind for e in document["entries"]) for kind in ("tactic", "technique", "mitigation")}
    print(f"wrote {args.output} (ATLAS {document['version']}: {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
