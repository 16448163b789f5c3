"""The note schema from `fmbuild.toml`: required fields by type, value types, dates, unique ids,
tags from the vocabulary, maturity levels, chapters, deprecation, and the folder of each type.

(`maturity: verified` being earned is the evidence rules' job: it needs the records.)
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.config import Config
from fmbuild.diagnostics import Diagnostic, error
from fmbuild.vault.model import Note
from fmbuild.vault.resolve import closest

_WIKILINK = re.compile(r"^\s*!?\[\[[^\[\]\n]+\]\]\s*$")


def _config(ctx: CheckContext) -> Config:
    assert ctx.config is not None  # rules here are registered with needs_config=True
    return ctx.config


@rule("schema-fields")
def check_fields(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = _config(ctx)
    required_by_type: dict[str | None, tuple[str, ...]] = {}  # one tuple per type, not per note
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or (note.problems and _has_broken_frontmatter(note)):
            continue
        note_type = note.type
        yield from _type_and_folder(note, note_type, config)
        known_type = note_type if note_type in config.types else None
        required = required_by_type.get(known_type)
        if required is None:
            required = required_by_type[known_type] = config.required_fields(known_type)
        yield from _required(note, known_type, required)
        yield from _values(note, config)


def _has_broken_frontmatter(note: Note) -> bool:
    # Malformed YAML is already one clear diagnostic; listing every "missing" field after it
    # would bury it.
    # A duplicate key is reported too, but the fields were read (the last value won): check them.
    return any(
        p.code == "frontmatter-invalid" and p.severity == "error" and not p.message.startswith("duplicate key ")
        for p in note.problems
    )


def _type_and_folder(note: Note, note_type: str | None, config: Config) -> Iterator[Diagnostic]:
    if note_type is None:
        known = ", ".join(f"type/{t}" for t in config.types)
        yield error(note.path, note.line_of("tags"), 1, "field-missing",
                    f"no type/ tag: add one of {known} to tags")
        return
    spec = config.types.get(note_type)
    if spec is None:
        close = closest(note_type, list(config.types))
        hint = f"; did you mean type/{close}?" if close else f" (known: {', '.join(config.types)})"
        yield error(note.path, note.line_of("tags"), 1, "field-invalid",
                    f"type/{note_type} is not a note type{hint}")
        return
    if spec.folder and not (note.path.startswith(spec.folder + "/")):
        yield error(note.path, note.line_of("tags"), 1, "field-invalid",
                    f"a {note_type} note belongs in {spec.folder}/: move it there or change its type/ tag")


def _required(note: Note, note_type: str | None, required: tuple[str, ...]) -> Iterator[Diagnostic]:
    for name in required:
        if name not in note.frontmatter:
            who = f"{note_type} notes" if note_type else "every note"
            yield error(note.path, 1, 1, "field-missing",
                        f"missing required field '{name}' ({who} need: {', '.join(required)})")
        elif _empty(note.frontmatter[name]):
            yield error(note.path, note.line_of(name), 1, "field-missing",
                        f"required field '{name}' is empty")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _values(note: Note, config: Config) -> Iterator[Diagnostic]:
    fm = note.frontmatter
    path = note.path

    def bad(key: str, message: str) -> Diagnostic:
        return error(path, note.line_of(key), 1, "field-invalid", message)

    if "title" in fm and fm["title"] is not None and not isinstance(fm["title"], str):
        yield bad("title", f"title: expected text, got {_kind(fm['title'])}")
    if "id" in fm and fm["id"] is not None and not isinstance(fm["id"], str):
        yield bad("id", f"id: expected text (e.g. fm-5b1e0c2a), got {_kind(fm['id'])}; quote it")
    if "tags" in fm and fm["tags"] is not None:
        tags = fm["tags"]
        if not isinstance(tags, (list, str)) or (isinstance(tags, list) and not all(isinstance(t, str) for t in tags)):
            yield bad("tags", "tags: expected a list of tags (type/technique, target/llm, ...)")

    if "maturity" in fm and fm["maturity"] is not None:
        maturity = fm["maturity"]
        if not isinstance(maturity, str) or maturity not in config.maturity_levels:
            close = closest(str(maturity).lower(), list(config.maturity_levels))
            hint = f"; did you mean '{close}'?" if close else ""
            yield bad("maturity", f"maturity: {maturity!r} is not one of {', '.join(config.maturity_levels)}{hint}")
        elif maturity == "deprecated":
            yield from _deprecation(note)

    dates: dict[str, _dt.date] = {}
    for key in ("created", "updated"):
        if key not in fm or fm[key] is None:
            continue
        value = note.date(key)
        if value is None:
            yield bad(key, f"{key}: {fm[key]!r} is not a date: write YYYY-MM-DD (e.g. 2026-02-14)")
        else:
            dates[key] = value
    if "created" in dates and "updated" in dates and dates["updated"] < dates["created"]:
        yield bad("updated", f"updated ({dates['updated']}) is before created ({dates['created']})")

    if "chapter" in fm and fm["chapter"] is not None:
        chapter = fm["chapter"]
        numbers = [c.number for c in config.chapters]
        if isinstance(chapter, bool) or not isinstance(chapter, int):
            yield bad("chapter", f"chapter: expected a chapter number, got {_kind(chapter)} {chapter!r}")
        elif numbers and chapter not in numbers:
            yield bad("chapter", f"chapter: {chapter} is not a chapter of the manual ({min(numbers)}–{max(numbers)})")


def _deprecation(note: Note) -> Iterator[Diagnostic]:
    fm = note.frontmatter
    successor = fm.get("successor")
    reason = fm.get("deprecated_reason")
    if successor is None and not (isinstance(reason, str) and reason.strip()):
        yield error(note.path, note.line_of("maturity"), 1, "field-missing",
                    "a deprecated note names its successor ('successor: \"[[techniques/...]]\"') "
                    "or why it was retired ('deprecated_reason: ...')")
    if successor is not None and not (isinstance(successor, str) and _WIKILINK.match(successor)):
        yield error(note.path, note.line_of("successor"), 1, "field-invalid",
                    f"successor: {successor!r} must be a wikilink, e.g. \"[[techniques/evasion]]\"")
    if reason is not None and not isinstance(reason, str):
        yield error(note.path, note.line_of("deprecated_reason"), 1, "field-invalid",
                    "deprecated_reason: expected text")


@rule("schema-ids")
def check_unique_ids(ctx: CheckContext) -> Iterator[Diagnostic]:
    owners: dict[str, list[Note]] = {}
    for note in ctx.vault.notes.values():
        value = note.frontmatter.get("id")
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            owners.setdefault(str(value).strip(), []).append(note)
    for value, notes in owners.items():
        if len(notes) < 2:
            continue
        for note in notes:
            if not ctx.wants(note.path):
                continue
            others = ", ".join(n.path for n in notes if n is not note)
            yield error(note.path, note.line_of("id"), 1, "id-duplicate",
                        f"id {value!r} is also the id of {others}: ids are unique and never reused; give this note a new one")


@rule("schema-tags")
def check_tags(ctx: CheckContext) -> Iterator[Diagnostic]:
    vocabulary = _config(ctx).tags
    if not vocabulary:
        return
    choices = sorted(vocabulary)
    memo: dict[str, str | None] = {}
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        for tag in note.tags:
            if tag.name in vocabulary:
                continue
            if tag.name not in memo:
                memo[tag.name] = _closest_tag(tag.name, choices)
            close = memo[tag.name]
            hint = f"; did you mean '{close}'?" if close else "; add it to [tags].vocabulary in fmbuild.toml if it is new"
            where = "" if not tag.inline else " (inline tag)"
            yield error(note.path, tag.line, tag.column, "tag-unknown",
                        f"tag '{tag.name}'{where} is not in the vocabulary{hint}")


def _closest_tag(name: str, choices: list[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = closest(name.lower(), list(lowered))
    if close is not None:
        return lowered[close]
    # 'llm' for 'target/llm': the same leaf under a namespace
    leaf = name.rsplit("/", 1)[-1].lower()
    for choice in choices:
        if choice.rsplit("/", 1)[-1].lower() == leaf:
            return choice
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return "a date"
    return "text"
