"""`fmbuild.toml`: the one configuration file, read as a typed schema with precise errors.

Every key is checked; an unknown or mistyped key is a `ConfigError` naming the exact key
(`[types.technique].required[2]: expected a string`). A vault without `fmbuild.toml` is a plain
Obsidian vault: `load_config` returns None and only link/encoding/YAML checks apply.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmbuild.errors import FmError

CONFIG_NAME = "fmbuild.toml"


class ConfigError(FmError):
    """A configuration mistake: the message names the file and key, and what was expected."""


@dataclass(frozen=True, slots=True)
class Chapter:
    number: int
    title: str
    summary: str
    wants: tuple[str, ...]  # what the chapter should grow to hold (the Growth Map, seed 002)


@dataclass(frozen=True, slots=True)
class NoteType:
    name: str  # 'technique', 'pattern', ...
    folder: str  # vault folder its notes live in
    required: tuple[str, ...]  # frontmatter fields that must be present


@dataclass(frozen=True, slots=True)
class SiteSettings:
    name: str
    url: str
    repo_url: str
    description: str
    output: str  # folder, relative to the project root


@dataclass(frozen=True, slots=True)
class EvidenceSettings:
    path: str  # folder of modules, relative to the project root
    default_timeout: int
    memory_mb: int
    max_processes: int
    max_file_mb: int
    max_log_mb: int
    seeds: tuple[int, ...]  # the standard: a `verified` note's claims hold on every one of these
    max_metrics_mb: int = 16  # largest metrics.json read back from a run
    max_output_mb: int = 2048  # all files one run writes (FMBUILD_OUT and its /tmp together)
    pass_env: tuple[str, ...] = ()  # host variables (naming files) the project lets into a sandbox

    @property
    def seed(self) -> int:
        """The first seed of the standard: the one prose `{{evidence:...}}` values come from."""
        return self.seeds[0]


@dataclass(frozen=True, slots=True)
class Config:
    project_root: Path  # folder holding fmbuild.toml
    vault_path: Path  # absolute
    templates: str  # vault-relative folder, not notes
    max_file_bytes: int
    maturity_levels: tuple[str, ...]
    tags: frozenset[str]  # the controlled vocabulary
    chapters: tuple[Chapter, ...]
    types: dict[str, NoteType]
    common_required: tuple[str, ...]
    site: SiteSettings
    evidence: EvidenceSettings
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def evidence_root(self) -> Path:
        return self.project_root / self.evidence.path

    def chapter(self, number: int) -> Chapter | None:
        for chapter in self.chapters:
            if chapter.number == number:
                return chapter
        return None

    def required_fields(self, note_type: str | None) -> tuple[str, ...]:
        extra = self.types[note_type].required if note_type in self.types else ()
        return tuple(dict.fromkeys(self.common_required + extra))


DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024


def find_config(start: Path) -> Path | None:
    """The nearest `fmbuild.toml` at or above `start`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path) -> Config:
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Reader(path, data).config()


class _Reader:
    """Reads sections with type checks; every error names `file: [section].key`."""

    _SECTIONS = {"vault", "maturity", "tags", "chapters", "types", "site", "evidence", "fields"}

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path.name}: {where}: {message}")

    def table(self, where: str, value: Any, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a table")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})")
        return value

    def get(self, tbl: dict[str, Any], where: str, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in tbl:
            if default is ...:
                raise self.fail(f"{where}.{key}", "missing")
            return default
        value = tbl[key]
        if isinstance(value, bool) and kind is int:
            raise self.fail(f"{where}.{key}", "expected an integer, got a boolean")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}", f"expected {names}, got {type(value).__name__}")
        return value

    def strings(self, tbl: dict[str, Any], where: str, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(tbl, where, key, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{where}.{key}[{i}]", "expected a string")
        return tuple(value)

    def _seeds(self, ev: dict[str, Any]) -> tuple[int, ...]:
        """`seeds = [0, 1, 2]`; the older scalar `seed = 0` still reads as the one-seed standard."""
        if "seed" in ev and "seeds" in ev:
            raise self.fail("[evidence].seed", "give either seed or seeds, not both (seeds = [0, 1, 2] replaces seed = 0)")
        if "seeds" not in ev:
            return (self.get(ev, "[evidence]", "seed", int, 0),)
        value = ev["seeds"]
        if not isinstance(value, list) or not value:
            raise self.fail("[evidence].seeds", "expected a non-empty list of integers, e.g. seeds = [0, 1, 2]")
        for i, item in enumerate(value):
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise self.fail(f"[evidence].seeds[{i}]", "expected a non-negative integer")
        if len(set(value)) != len(value):
            raise self.fail("[evidence].seeds", "a seed is listed twice")
        return tuple(value)

    def config(self) -> Config:
        data = self.table("(top level)", self.data, self._SECTIONS)
        root = self.path.parent.resolve()

        vault = self.table("[vault]", data.get("vault", {}), {"path", "templates", "max_file_bytes"})
        vault_path = (root / self.get(vault, "[vault]", "path", str, "vault")).resolve()
        templates = self.get(vault, "[vault]", "templates", str, "templates").strip("/")
        max_bytes = self.get(vault, "[vault]", "max_file_bytes", int, DEFAULT_MAX_FILE_BYTES)
        if max_bytes <= 0:
            raise self.fail("[vault].max_file_bytes", "must be positive")

        maturity = self.table("[maturity]", data.get("maturity", {}), {"levels"})
        levels = self.strings(maturity, "[maturity]", "levels", ("draft", "reviewed", "verified", "deprecated"))
        for needed in ("draft", "verified", "deprecated"):
            if needed not in levels:
                raise self.fail("[maturity].levels", f"must include {needed!r}")

        tags_tbl = self.table("[tags]", data.get("tags", {}), {"vocabulary"})
        vocabulary = frozenset(self.strings(tags_tbl, "[tags]", "vocabulary", ()))

        chapters = []
        raw_chapters = self.get(data, "(top level)", "chapters", list, [])
        for i, item in enumerate(raw_chapters):
            where = f"[[chapters]][{i}]"
            item = self.table(where, item, {"number", "title", "summary", "wants"})
            number = self.get(item, where, "number", int)
            chapters.append(
                Chapter(
                    number=number,
                    title=self.get(item, where, "title", str),
                    summary=self.get(item, where, "summary", str, ""),
                    wants=self.strings(item, where, "wants", ()),
                )
            )
        numbers = [c.number for c in chapters]
        if len(set(numbers)) != len(numbers):
            raise self.fail("[[chapters]]", "chapter numbers must be unique")

        fields_tbl = self.table("[fields]", data.get("fields", {}), {"required"})
        common = self.strings(fields_tbl, "[fields]", "required", ())

        types: dict[str, NoteType] = {}
        for name, item in self.table("[types]", data.get("types", {})).items():
            where = f"[types.{name}]"
            item = self.table(where, item, {"folder", "required"})
            types[name] = NoteType(
                name=name,
                folder=self.get(item, where, "folder", str).strip("/"),
                required=self.strings(item, where, "required", ()),
            )

        site_tbl = self.table("[site]", data.get("site", {}), {"name", "url", "repo_url", "description", "output"})
        site = SiteSettings(
            name=self.get(site_tbl, "[site]", "name", str, "Field Manual"),
            url=self.get(site_tbl, "[site]", "url", str, ""),
            repo_url=self.get(site_tbl, "[site]", "repo_url", str, ""),
            description=self.get(site_tbl, "[site]", "description", str, ""),
            output=self.get(site_tbl, "[site]", "output", str, "site"),
        )

        ev = self.table(
            "[evidence]",
            data.get("evidence", {}),
            {"path", "default_timeout", "memory_mb", "max_processes", "max_file_mb", "max_log_mb", "seed", "seeds",
             "max_metrics_mb", "max_output_mb", "pass_env"},
        )
        pass_env = self.strings(ev, "[evidence]", "pass_env", ())
        for i, name in enumerate(pass_env):
            from fmbuild.evidence.env_policy import pass_env_problem

            problem = pass_env_problem(name)
            if problem:
                raise self.fail(f"[evidence].pass_env[{i}]", problem)
        evidence = EvidenceSettings(
            path=self.get(ev, "[evidence]", "path", str, "evidence"),
            default_timeout=self.get(ev, "[evidence]", "default_timeout", int, 600),
            memory_mb=self.get(ev, "[evidence]", "memory_mb", int, 4096),
            max_processes=self.get(ev, "[evidence]", "max_processes", int, 256),
            max_file_mb=self.get(ev, "[evidence]", "max_file_mb", int, 512),
            max_log_mb=self.get(ev, "[evidence]", "max_log_mb", int, 8),
            seeds=self._seeds(ev),
            max_metrics_mb=self.get(ev, "[evidence]", "max_metrics_mb", int, 16),
            max_output_mb=self.get(ev, "[evidence]", "max_output_mb", int, 2048),
            pass_env=pass_env,
        )
        for key in ("default_timeout", "memory_mb", "max_processes", "max_file_mb", "max_log_mb", "max_metrics_mb",
                    "max_output_mb"):
            if getattr(evidence, key) <= 0:
                raise self.fail(f"[evidence].{key}", "must be positive")

        return Config(
            project_root=root,
            vault_path=vault_path,
            templates=templates,
            max_file_bytes=max_bytes,
            maturity_levels=levels,
            tags=vocabulary,
            chapters=tuple(sorted(chapters, key=lambda c: c.number)),
            types=types,
            common_required=common,
            site=site,
            evidence=evidence,
            raw=data,
        )
