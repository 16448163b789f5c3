"""The manifest of an Edition: everything it freezes, as plain, sorted, path-relative JSON.

    {
      "format": 1, "name", "title", "date" (YYYY-MM-DD, the commit's), "commit", "commit_date",
      "previous": the Edition the changelog compares against (or null),
      "notes":   [{id, path, title, type, maturity, chapter, sha256, frameworks, evidence, evidence_state}],
      "modules": [{name, path, inputs_hash, record, record_files}],
      "edges":   [{source, target, type, use?}],
      "frameworks": {"versions": {...}, "covered": {ID: name}},
      "unverified": [{path, state, detail}]  (only what --allow-unverified let through),
      "versions": {"fmbuild", "python", "dependencies": {dist: version}},
      "files": {"manual.html": {"sha256", "bytes"}, ...}
    }

Nothing in it depends on where the project lives or when the cut ran: dates come from the
commit, paths are relative, keys and lists are sorted.
"""

from __future__ import annotations

import hashlib
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from fmbuild import __version__
from fmbuild.evidence.contract import read_evidence_block
from fmbuild.evidence.fingerprint import file_digest, inputs_hash
from fmbuild.evidence.records import RECORD_DIR, load_record
from fmbuild.graph.model import FRAMEWORK_FIELDS, EdgeType, NodeType

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.editions.gitinfo import Commit
    from fmbuild.editions.readiness import Readiness
    from fmbuild.vault.model import Note, Vault

FORMAT = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def note_entry(config: Config, note: Note, state: str | None) -> dict[str, Any]:
    chapter = note.frontmatter.get("chapter")
    block = read_evidence_block(note.frontmatter.get("evidence"), config.evidence.path)
    evidence = None
    if block is not None:
        evidence = {
            "module": block.module,
            "claims": {c.metric: c.source for c in block.claims},
        }
    ids: list[str] = []
    for name in FRAMEWORK_FIELDS:
        value = note.frontmatter.get(name)
        ids += [str(v) for v in (value if isinstance(value, list) else [value]) if isinstance(v, (str, int))]
    return {
        "id": note.id,
        "path": note.path,
        "title": note.title,
        "type": note.type,
        "maturity": note.maturity,
        "chapter": chapter if isinstance(chapter, int) and not isinstance(chapter, bool) else None,
        "sha256": note.sha256,
        "frameworks": sorted(set(ids)),
        "evidence": evidence,
        "evidence_state": state,
    }


def module_entries(config: Config, vault: Vault) -> list[dict[str, Any]]:
    """Every module a note names, with its inputs' hash and its committed record."""
    names: set[str] = set()
    for note in vault.notes.values():
        block = read_evidence_block(note.frontmatter.get("evidence"), config.evidence.path)
        if block is not None and block.name:
            names.add(block.name)
    entries = []
    for name in sorted(names):
        folder = config.evidence_root / name
        if not folder.is_dir():
            continue
        record = load_record(folder)
        record_json = None
        if record is not None:
            record_json = record.to_json()
            record_json.pop("log_tail", None)  # the log itself is hashed in record_files
        record_dir = folder / RECORD_DIR
        record_files = {}
        if record_dir.is_dir():
            for path in sorted(p for p in record_dir.rglob("*") if p.is_file() or p.is_symlink()):
                record_files[path.relative_to(record_dir).as_posix()] = file_digest(path)
        entries.append({
            "name": name,
            "path": f"{config.evidence.path.strip('/')}/{name}",
            "inputs_hash": inputs_hash(folder),
            "record": record_json,
            "record_files": record_files,
        })
    return entries


def playbook_entries(config: Config, vault: Vault) -> list[dict[str, Any]]:
    """Every note with runnable steps, with its steps' committed record and that file's digest."""
    from fmbuild.playbooks.run import RECORD_FILE, load_record, record_dir
    from fmbuild.playbooks.state import playbook_for

    entries = []
    for path in sorted(vault.notes):
        note = vault.notes[path]
        if note.type not in ("playbook", "command-sheet"):
            continue
        playbook = playbook_for(config, path, note.title)
        if playbook is None or not playbook.steps:
            continue
        record_file = record_dir(config.evidence_root, playbook.name) / RECORD_FILE
        entries.append({
            "note": path, "steps": [s.id for s in playbook.steps],
            "record": load_record(config.evidence_root, playbook.name),
            "record_file": {_relative(record_file, config.project_root): file_digest(record_file)}
            if record_file.is_file() else {},
        })
    return entries


def edge_entries(graph: nx.MultiDiGraph) -> list[dict[str, Any]]:
    edges = []
    for source, target, _key, attrs in graph.edges(keys=True, data=True):
        entry = {"source": source, "target": target, "type": attrs.get("type")}
        if attrs.get("use"):
            entry["use"] = attrs["use"]
        edges.append(entry)
    return sorted(edges, key=lambda e: (e["source"], e["type"] or "", e["target"]))


def covered_frameworks(graph: nx.MultiDiGraph) -> dict[str, str]:
    covered = {}
    for _source, target, attrs in graph.edges(data=True):
        if attrs.get("type") == EdgeType.MAPS_TO:
            node = graph.nodes[target]
            if node.get("type") == NodeType.FRAMEWORK:
                covered[target] = str(node.get("title") or "")
    return dict(sorted(covered.items()))


def tool_versions() -> dict[str, Any]:
    """fmbuild's version and those of the distributions it requires (extras left out)."""
    deps: dict[str, str] = {}
    try:
        requirements = metadata.requires("fmbuild") or []
    except metadata.PackageNotFoundError:
        requirements = []
    for text in requirements:
        if "extra ==" in text:
            continue
        name = re.split(r"[\s<>=!~;\[(]", text, maxsplit=1)[0]
        try:
            deps[name.lower()] = metadata.version(name)
        except metadata.PackageNotFoundError:
            deps[name.lower()] = "not installed"
    return {"fmbuild": __version__, "python": platform.python_version(), "dependencies": dict(sorted(deps.items()))}


def build_manifest(
    *,
    config: Config,
    vault: Vault,
    graph: nx.MultiDiGraph,
    readiness: Readiness,
    name: str,
    commit: Commit,
    previous: str | None,
    files: dict[str, bytes],
) -> dict[str, Any]:
    notes = []
    for path in sorted(vault.notes):
        standing = readiness.standings.get(path)
        notes.append(note_entry(config, vault.notes[path], standing.state if standing else None))
    return {
        "format": FORMAT,
        "name": name,
        "title": f"{config.site.name} – Edition {name}",
        "date": commit.day,
        "commit": commit.sha,
        "commit_date": commit.iso,
        "previous": previous,
        "vault": _relative(config.vault_path, config.project_root),
        "notes": notes,
        "modules": module_entries(config, vault),
        "playbooks": playbook_entries(config, vault),
        "edges": edge_entries(graph),
        "frameworks": {"versions": dict(sorted(graph.graph.get("frameworks", {}).items())),
                       "covered": covered_frameworks(graph)},
        "unverified": [{"path": s.path, "state": s.state, "detail": s.detail} for s in readiness.unverified],
        "versions": tool_versions(),
        "files": {n: {"sha256": sha256(data), "bytes": len(data)} for n, data in sorted(files.items())},
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return path.name
