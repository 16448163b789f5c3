"""`fmbuild check`'s engine: load the rule modules, walk the chain, collect diagnostics.

Each concern registers its rules (`fmbuild.check.registry.rule`) when its module is imported.
Problems found while loading (unreadable files, bad encoding, malformed YAML) come first; rules
then run in registration order. Rules that need `fmbuild.toml` are skipped for a plain
Obsidian vault.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Iterable

from fmbuild.check.registry import RULES, CheckContext
from fmbuild.diagnostics import Diagnostic

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault
    from fmbuild.vault.resolve import Resolver

# In chain order.
RULE_MODULES = ("links", "schema", "security", "frameworks", "evidence_rules", "graph_rules")


def load_rules() -> None:
    for name in RULE_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def run_checks(
    vault: Vault,
    config: Config | None,
    resolver: Resolver | None = None,
    selected: Iterable[str] | None = None,
) -> list[Diagnostic]:
    """Every diagnostic for the vault (or only for the `selected` vault-relative paths)."""
    from fmbuild.vault.resolve import Resolver

    load_rules()
    ctx = CheckContext(
        vault=vault,
        config=config,
        resolver=resolver or Resolver(vault),
        selected=set(selected) if selected is not None else None,
    )
    found: list[Diagnostic] = [d for d in vault.problems if ctx.wants(d.path)]
    for note in vault.notes.values():
        if ctx.wants(note.path):
            found.extend(note.problems)
    for rule in RULES:
        if rule.needs_config and config is None:
            continue
        found.extend(d for d in rule.fn(ctx) if ctx.wants(d.path))
    return _unique(found)


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[Diagnostic] = set()
    out: list[Diagnostic] = []
    for d in diagnostics:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out
