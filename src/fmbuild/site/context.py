"""Everything the page builders share, computed once per build."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from fmbuild.config import Config
from fmbuild.site.convert import Converter, SiteVault, forget_titles
from fmbuild.site.evidence_view import EvidenceBook
from fmbuild.vault.model import Note, Vault
from fmbuild.vault.resolve import Resolver


@dataclass
class SiteContext:
    vault: Vault
    config: Config | None
    site: SiteVault
    converter: Converter
    graph: nx.MultiDiGraph
    evidence: EvidenceBook
    editions_root: Path | None
    site_name: str
    repo_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def evidence_path(self) -> str:
        return self.config.evidence.path if self.config else "evidence"

    def published_notes(self) -> list[Note]:
        return sorted(self.vault.notes.values(), key=lambda n: n.path)


def make_context(vault: Vault, config: Config | None, graph: nx.MultiDiGraph | None = None,
                 resolver: Resolver | None = None) -> SiteContext:
    forget_titles()
    resolver = resolver or Resolver(vault)
    evidence_root = config.evidence_root if config else None
    book = EvidenceBook(evidence_root, config.evidence.path if config else "evidence")
    site = SiteVault(vault, resolver, book)
    if graph is None:
        from fmbuild.graph.build import build_graph

        graph = build_graph(vault, config, resolver)
    editions_root = (config.project_root / "editions") if config else None
    return SiteContext(
        vault=vault,
        config=config,
        site=site,
        converter=Converter(site),
        graph=graph,
        evidence=book,
        editions_root=editions_root,
        site_name=config.site.name if config else vault.root.name,
        repo_url=config.site.repo_url if config else "",
    )
