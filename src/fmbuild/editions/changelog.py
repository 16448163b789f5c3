"""What changed between two Editions, computed from their manifests (never from git history).

Notes are matched by `id` (a note moved to a new path is *renamed*, not removed and added);
a note without an id is matched by path. Graph edges are compared through the same identities,
so renaming a note does not drop and re-add its edges.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Changelog:
    name: str
    previous: str | None
    previous_commit: str | None
    notes_added: list[dict[str, Any]] = field(default_factory=list)  # {path, title, type, maturity}
    notes_removed: list[dict[str, Any]] = field(default_factory=list)
    notes_renamed: list[dict[str, Any]] = field(default_factory=list)  # {id, title, old_path, new_path}
    notes_changed: list[dict[str, Any]] = field(default_factory=list)  # {path, title, fields: [...]}
    maturity: list[dict[str, Any]] = field(default_factory=list)  # {path, title, old, new}
    claims_added: list[dict[str, Any]] = field(default_factory=list)  # {path, metric, claim}
    claims_dropped: list[dict[str, Any]] = field(default_factory=list)
    claims_changed: list[dict[str, Any]] = field(default_factory=list)  # {path, metric, old, new}
    edges_added: list[dict[str, Any]] = field(default_factory=list)  # {source, type, target}
    edges_dropped: list[dict[str, Any]] = field(default_factory=list)
    frameworks_covered: list[dict[str, str]] = field(default_factory=list)  # {id, name}
    frameworks_uncovered: list[dict[str, str]] = field(default_factory=list)
    modules_rerecorded: list[dict[str, Any]] = field(default_factory=list)  # {name, old_date, new_date}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def empty(self) -> bool:
        return not any(v for k, v in asdict(self).items() if isinstance(v, list))


def _key(note: dict[str, Any]) -> str:
    return f"id:{note['id']}" if note.get("id") else f"path:{note['path']}"


def _notes(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not manifest:
        return {}
    return {_key(n): n for n in manifest.get("notes", []) if isinstance(n, dict) and "path" in n}


def _edges(manifest: dict[str, Any] | None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Edges keyed by (source identity, type, target identity); note paths become note keys."""
    if not manifest:
        return {}
    by_path = {n["path"]: _key(n) for n in manifest.get("notes", []) if isinstance(n, dict) and "path" in n}
    found = {}
    for edge in manifest.get("edges", []):
        if edge.get("type") in ("links-to",):
            continue  # prose links churn with every edit; the typed edges are the graph's meaning
        key = (by_path.get(edge["source"], edge["source"]), str(edge.get("type")), by_path.get(edge["target"], edge["target"]))
        found[key] = edge
    return found


def _claims(note: dict[str, Any]) -> dict[str, str]:
    evidence = note.get("evidence") or {}
    claims = evidence.get("claims") if isinstance(evidence, dict) else None
    return dict(claims) if isinstance(claims, dict) else {}


def _brief(note: dict[str, Any]) -> dict[str, Any]:
    return {"path": note["path"], "title": note.get("title"), "type": note.get("type"), "maturity": note.get("maturity")}


def compare(old: dict[str, Any] | None, new: dict[str, Any]) -> Changelog:
    log = Changelog(
        name=str(new.get("name")),
        previous=str(old.get("name")) if old else None,
        previous_commit=str(old.get("commit")) if old else None,
    )
    before, after = _notes(old), _notes(new)
    for key in sorted(after.keys() - before.keys(), key=lambda k: after[k]["path"]):
        note = after[key]
        log.notes_added.append(_brief(note))
        for metric, claim in sorted(_claims(note).items()):
            log.claims_added.append({"path": note["path"], "metric": metric, "claim": claim})
    for key in sorted(before.keys() - after.keys(), key=lambda k: before[k]["path"]):
        note = before[key]
        log.notes_removed.append(_brief(note))
        for metric, claim in sorted(_claims(note).items()):
            log.claims_dropped.append({"path": note["path"], "metric": metric, "claim": claim})
    for key in sorted(after.keys() & before.keys(), key=lambda k: after[k]["path"]):
        was, now = before[key], after[key]
        if was["path"] != now["path"]:
            log.notes_renamed.append({"id": now.get("id"), "title": now.get("title"),
                                      "old_path": was["path"], "new_path": now["path"]})
        changed = [f for f in ("title", "type", "chapter", "frameworks") if was.get(f) != now.get(f)]
        if was.get("sha256") != now.get("sha256"):
            changed.insert(0, "content")
        if changed:
            log.notes_changed.append({"path": now["path"], "title": now.get("title"), "fields": changed})
        if was.get("maturity") != now.get("maturity"):
            log.maturity.append({"path": now["path"], "title": now.get("title"),
                                 "old": was.get("maturity"), "new": now.get("maturity")})
        old_claims, new_claims = _claims(was), _claims(now)
        for metric in sorted(new_claims.keys() - old_claims.keys()):
            log.claims_added.append({"path": now["path"], "metric": metric, "claim": new_claims[metric]})
        for metric in sorted(old_claims.keys() - new_claims.keys()):
            log.claims_dropped.append({"path": now["path"], "metric": metric, "claim": old_claims[metric]})
        for metric in sorted(old_claims.keys() & new_claims.keys()):
            if old_claims[metric] != new_claims[metric]:
                log.claims_changed.append({"path": now["path"], "metric": metric,
                                           "old": old_claims[metric], "new": new_claims[metric]})

    old_edges, new_edges = _edges(old), _edges(new)
    shown = {k: after.get(k, before.get(k, {})).get("path", k) for k in after.keys() | before.keys()}
    for key in sorted(new_edges.keys() - old_edges.keys()):
        log.edges_added.append({"source": shown.get(key[0], key[0]), "type": key[1], "target": shown.get(key[2], key[2])})
    for key in sorted(old_edges.keys() - new_edges.keys()):
        log.edges_dropped.append({"source": shown.get(key[0], key[0]), "type": key[1], "target": shown.get(key[2], key[2])})

    old_cov = (old or {}).get("frameworks", {}).get("covered", {}) if old else {}
    new_cov = new.get("frameworks", {}).get("covered", {})
    log.frameworks_covered = [{"id": i, "name": new_cov[i]} for i in sorted(new_cov.keys() - old_cov.keys())]
    log.frameworks_uncovered = [{"id": i, "name": old_cov[i]} for i in sorted(old_cov.keys() - new_cov.keys())]

    old_mods = {m["name"]: m for m in (old or {}).get("modules", [])} if old else {}
    for module in new.get("modules", []):
        was = old_mods.get(module["name"])
        if was is None or (was.get("record") or {}).get("date") == (module.get("record") or {}).get("date"):
            continue
        log.modules_rerecorded.append({"name": module["name"],
                                       "old_date": (was.get("record") or {}).get("date"),
                                       "new_date": (module.get("record") or {}).get("date")})
    return log


# --- rendering ------------------------------------------------------------------------------------


def _md(text: Any) -> str:
    """Plain text from a note (a title, a path) made inert in Markdown."""
    value = str(text if text is not None else "")
    for ch in "\\`*_[]<>|#~":
        value = value.replace(ch, "\\" + ch)
    return value.replace("\n", " ")


def _code(text: Any) -> str:
    value = str(text).replace("\n", " ")
    fence = "``" if "`" in value else "`"
    return f"{fence} {value} {fence}" if fence == "``" else f"`{value}`"


def _note_line(item: dict[str, Any]) -> str:
    extra = ", ".join(str(item[k]) for k in ("type", "maturity") if item.get(k))
    return f"- **{_md(item.get('title'))}** ({_code(item['path'])}{', ' + _md(extra) if extra else ''})"


def to_markdown(log: Changelog) -> str:
    lines = [f"# Changes in Edition {_md(log.name)}", ""]
    if log.previous is None:
        lines += ["The first Edition: everything in it is new.", ""]
    else:
        commit = f" (commit {_code(log.previous_commit[:12])})" if log.previous_commit else ""
        lines += [f"Compared with Edition {_md(log.previous)}{commit}.", ""]
    if log.empty:
        lines += ["Nothing changed.", ""]
        return "\n".join(lines)

    counts = [
        ("notes added", log.notes_added), ("notes removed", log.notes_removed),
        ("notes renamed", log.notes_renamed), ("notes changed", log.notes_changed),
        ("maturity transitions", log.maturity), ("claims added", log.claims_added),
        ("claims dropped", log.claims_dropped), ("claims changed", log.claims_changed),
        ("graph edges added", log.edges_added), ("graph edges dropped", log.edges_dropped),
        ("framework IDs newly covered", log.frameworks_covered),
        ("framework IDs no longer covered", log.frameworks_uncovered),
        ("evidence modules re-recorded", log.modules_rerecorded),
    ]
    lines += ["| change | count |", "| --- | ---: |"]
    lines += [f"| {label} | {len(items)} |" for label, items in counts if items]
    lines.append("")

    def section(title: str, items: list[Any], render: Any) -> None:
        if items:
            lines.extend([f"## {title}", "", *(render(i) for i in items), ""])

    section("Notes added", log.notes_added, _note_line)
    section("Notes removed", log.notes_removed, _note_line)
    section("Notes renamed", log.notes_renamed,
            lambda i: f"- **{_md(i['title'])}**: {_code(i['old_path'])} → {_code(i['new_path'])}")
    section("Notes changed", log.notes_changed,
            lambda i: f"- **{_md(i['title'])}** ({_code(i['path'])}): {', '.join(i['fields'])}")
    section("Maturity transitions", log.maturity,
            lambda i: f"- **{_md(i['title'])}** ({_code(i['path'])}): {_md(i['old'])} → {_md(i['new'])}")
    section("Claims added", log.claims_added,
            lambda i: f"- {_code(i['path'])}: {_code(i['metric'])} {_code(i['claim'])}")
    section("Claims dropped", log.claims_dropped,
            lambda i: f"- {_code(i['path'])}: {_code(i['metric'])} {_code(i['claim'])}")
    section("Claims changed", log.claims_changed,
            lambda i: f"- {_code(i['path'])}: {_code(i['metric'])} {_code(i['old'])} → {_code(i['new'])}")
    edge = lambda i: f"- {_code(i['source'])} **{_md(i['type'])}** {_code(i['target'])}"
    section("Graph edges added", log.edges_added, edge)
    section("Graph edges dropped", log.edges_dropped, edge)
    section("Framework IDs newly covered", log.frameworks_covered, lambda i: f"- {_code(i['id'])} {_md(i['name'])}")
    section("Framework IDs no longer covered", log.frameworks_uncovered, lambda i: f"- {_code(i['id'])} {_md(i['name'])}")
    section("Evidence re-recorded", log.modules_rerecorded,
            lambda i: f"- {_code(i['name'])}: record of {_md(i['old_date'])} → {_md(i['new_date'])}")
    return "\n".join(lines).rstrip("\n") + "\n"


def to_json_bytes(log: Changelog) -> bytes:
    return (json.dumps(log.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
