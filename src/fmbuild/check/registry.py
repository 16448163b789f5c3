"""The chain of check rules.

A rule is one small function `rule(ctx) -> Iterable[Diagnostic]`, registered by name in
order; each concern (links, schema, security, frameworks, evidence, graph) lives in its own
module under `fmbuild.check` and registers its rules on import. `fmbuild.check.run_checks`
imports the modules in `RULE_MODULES` and walks the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.diagnostics import Diagnostic
    from fmbuild.vault.model import Vault
    from fmbuild.vault.resolve import Resolver


@dataclass
class CheckContext:
    vault: Vault
    config: Config | None  # None: a plain Obsidian vault, only structural rules run
    resolver: Resolver
    # Notes to report on (vault-relative paths); None means all. Rules still see the whole vault.
    selected: set[str] | None = None
    cache: dict[str, object] = field(default_factory=dict)  # rules may share derived data here

    def wants(self, path: str) -> bool:
        return self.selected is None or path in self.selected


RuleFn = Callable[[CheckContext], Iterable["Diagnostic"]]


@dataclass(frozen=True)
class Rule:
    name: str
    fn: RuleFn
    needs_config: bool  # False: runs on any Obsidian vault


RULES: list[Rule] = []


def rule(name: str, *, needs_config: bool = True) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        if any(r.name == name for r in RULES):
            raise ValueError(f"check rule {name!r} registered twice")
        RULES.append(Rule(name, fn, needs_config))
        return fn

    return register
