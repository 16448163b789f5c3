"""The technique-to-control graph: built from the vault model, exported, and asked about coverage.

- `fmbuild.graph.build.build_graph(vault, config, resolver=None) -> networkx.MultiDiGraph`
- `fmbuild.graph.coverage`: `coverage_summary`, `uncovered`, `unverified_controls`, `orphans`,
  `matrix`
- `fmbuild.graph.queries`: a node's controls, techniques, playbooks, backlinks, neighbours
- `fmbuild.graph.export`: `to_json`, `to_graphml`, `to_dot`, `to_mermaid`
- `fmbuild.graph.views`: `with_edge_types`, `neighbourhood` (smaller graphs to export)
- `fmbuild.graph.model`: node and edge types, node ids
"""
