"""`fmbuild check`'s engine: load the rule modules, walk the chain, collect diagnostics.

Each concern registers its rules (`fmbuild.check.registry.rule`) when its module is imported.
Problems found while loading (unreadable files, bad encoding, malformed YAML) come first; rules
then run in registration order. Rules that need `fmbuild.toml` are skipped for a plain
Obsidian vault.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fmbuild.check.registry import RULES, CheckContext
from fmbuild.diagnostics import Diagnostic

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Vault
    from fmbuild.vault.resolve import Resolver

# In chain order.
RULE_MODULES = ("links", "schema", "security", "frameworks", "evidence_rules", "step_rules", "graph_rules")


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
    from fmbuild.check import results
    from fmbuild.vault.resolve import Resolver

    keys = results.keys(vault, config) if vault.cache_dir is not None else None
    last = results.stored(vault) if keys is not None else None
    wanted = set(selected) if selected is not None else None
    if keys is not None and last is not None and last.key == keys[1]:
        findings = last.findings()
        if findings is not None:
            return [d for d in findings if wanted is None or d.path in wanted]
    # Notes whose local findings still hold: same context, same content.
    reuse: dict[str, dict[str, list[Diagnostic]]] = {}
    if keys is not None and last is not None and last.context == keys[0]:
        for path, note in vault.notes.items():
            if wanted is None or path in wanted:
                rules = last.local(path, note.sha256)
                if rules is not None:
                    reuse[path] = rules

    load_rules()
    ctx = CheckContext(
        vault=vault,
        config=config,
        resolver=resolver or Resolver(vault),
        selected=wanted,
    )
    # The local rules see only the notes they must check afresh (and share derived data).
    fresh = {p for p in vault.notes if ctx.wants(p) and p not in reuse}
    local_ctx = CheckContext(vault, config, ctx.resolver, selected=fresh, cache=ctx.cache)
    local: dict[str, dict[str, list[Diagnostic]]] = {p: {} for p in fresh}
    found: list[Diagnostic] = [d for d in vault.problems if ctx.wants(d.path)]
    for note in vault.notes.values():
        if ctx.wants(note.path):
            found.extend(note.problems)
    for rule in RULES:
        if rule.needs_config and config is None:
            continue
        if rule.name not in results.LOCAL_RULES:
            found.extend(d for d in rule.fn(ctx) if ctx.wants(d.path))
            continue
        for path, rules in reuse.items():
            found.extend(rules.get(rule.name, ()))
        for d in rule.fn(local_ctx):
            if d.path in local:
                local[d.path].setdefault(rule.name, []).append(d)
                found.append(d)
    found = _unique(found)
    if keys is not None and wanted is None:
        for path, rules in reuse.items():
            local[path] = rules
        results.store(vault, keys[1], keys[0], found, local)
    return found


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[Diagnostic] = set()
    out: list[Diagnostic] = []
    for d in diagnostics:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out
