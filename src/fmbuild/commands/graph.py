"""`fmbuild graph`: export the technique-to-control graph, or answer coverage questions.

    fmbuild graph [--format json|graphml|dot|mermaid|navigator] [--output FILE [--force]]
                  [--edge-type TYPE ...] [--focus NOTE [--depth N]]
    fmbuild graph --uncovered | --unverified-controls | --orphans | --coverage | --matrix
                  [--format text|json] [--fail-on-findings]

Exit codes: 0 ok; 1 when `--fail-on-findings` is given and a question (--uncovered,
--unverified-controls, --orphans) has answers; 2 on usage or configuration errors.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
import networkx as nx

from fmbuild.commands.common import EXIT_FINDINGS, EXIT_USAGE, fail_usage
from fmbuild.terminal import echo

EXPORT_FORMATS = ("json", "graphml", "dot", "mermaid", "navigator")
QUESTIONS = ("uncovered", "unverified_controls", "orphans", "coverage", "matrix")
FINDING_QUESTIONS = ("uncovered", "unverified_controls", "orphans")


@click.command("graph")
@click.option("--format", "fmt", type=click.Choice(["json", "graphml", "dot", "mermaid", "navigator", "text"]), default=None,
              help="Export format (default json; navigator: an ATLAS Navigator layer of the coverage); "
                   "with a coverage question: text (default) or json.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the export to FILE instead of standard output.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--edge-type", "edge_types", multiple=True,
              type=click.Choice(["mitigates", "enables", "covers", "applies", "evidenced-by", "maps-to", "links-to"]),
              help="Export only edges of this type (repeatable) and the nodes they touch.")
@click.option("--focus", metavar="NOTE",
              help="Export only this note's neighbourhood (vault-relative path, e.g. techniques/evasion.md).")
@click.option("--depth", type=click.IntRange(0, 10), default=1, show_default=True,
              help="With --focus: how many edges away from the note to go.")
@click.option("--uncovered", is_flag=True, help="Techniques that no pattern with verified evidence mitigates.")
@click.option("--unverified-controls", is_flag=True, help="Patterns and anti-patterns whose evidence is not verified.")
@click.option("--orphans", is_flag=True, help="Notes that no other note links to.")
@click.option("--coverage", is_flag=True, help="Coverage summary, per ATLAS tactic where techniques name ATLAS IDs.")
@click.option("--matrix", is_flag=True, help="The technique x control matrix.")
@click.option("--fail-on-findings", is_flag=True, help="Exit 1 when --uncovered/--unverified-controls/--orphans find any.")
@click.option("--vault", "vault_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Use this folder as the vault (any Obsidian vault; fmbuild.toml is optional).")
@click.option("--no-cache", is_flag=True, help="Parse every note again (ignore .fmbuild/).")
def command(
    fmt: str | None,
    output: Path | None,
    force: bool,
    edge_types: tuple[str, ...],
    focus: str | None,
    depth: int,
    uncovered: bool,
    unverified_controls: bool,
    orphans: bool,
    coverage: bool,
    matrix: bool,
    fail_on_findings: bool,
    vault_dir: Path | None,
    no_cache: bool,
) -> None:
    """Export the technique-to-control graph and answer coverage questions."""
    asked = [name for name, on in zip(QUESTIONS, (uncovered, unverified_controls, orphans, coverage, matrix)) if on]
    if asked and fmt not in (None, "text", "json"):
        fail_usage(f"--{asked[0].replace('_', '-')} answers in text or json, not {fmt} (drop --format {fmt})")
    if not asked and fmt == "text":
        fail_usage("--format text is for coverage questions; export the graph as json, graphml, dot, mermaid or navigator")
    if asked and (edge_types or focus):
        fail_usage("--edge-type and --focus shape an export; coverage questions always read the whole graph")
    if fail_on_findings and not any(q in asked for q in FINDING_QUESTIONS):
        fail_usage("--fail-on-findings needs --uncovered, --unverified-controls or --orphans")
    if output is not None and output.exists() and not force:
        fail_usage(f"{output} exists; pass --force to replace it")

    if fmt == "navigator" and (edge_types or focus):
        fail_usage("--format navigator exports the whole coverage; drop --edge-type and --focus")
    graph, vault_root, site_url = _load_graph(vault_dir, no_cache)
    if focus is not None:
        graph = _focus(graph, focus, depth, vault_root)
    if edge_types:
        from fmbuild.graph.views import with_edge_types

        graph = with_edge_types(graph, edge_types)
    if asked:
        text, findings = _answers(graph, asked, fmt or "text")
    elif fmt == "navigator":
        from fmbuild.graph.navigator import to_navigator

        text, findings = to_navigator(graph, site_url), 0
    else:
        from fmbuild.graph.export import export

        text, findings = export(graph, fmt or "json"), 0
    _emit(text, output)
    if fail_on_findings and findings:
        raise click.exceptions.Exit(EXIT_FINDINGS)


def _load_graph(vault_dir: Path | None, no_cache: bool) -> tuple[nx.MultiDiGraph, Path, str]:
    from fmbuild.graph.build import build_graph
    from fmbuild.vault import load as loading

    config, vault = loading.load_project(vault=vault_dir, use_cache=not no_cache)
    return build_graph(vault, config), vault.root, config.site.url if config is not None else ""


def _focus(graph: nx.MultiDiGraph, focus: str, depth: int, vault_root: Path) -> nx.MultiDiGraph:
    """The neighbourhood of the note named by --focus: a vault-relative path (with or without
    '.md'), or a path to the note's file."""
    from fmbuild.graph.views import neighbourhood

    wanted = focus.strip().replace("\\", "/")
    candidates = [wanted, wanted + ".md"]
    given = Path(focus)
    if given.exists():
        try:
            candidates.insert(0, given.resolve().relative_to(vault_root).as_posix())
        except ValueError:
            pass
    for candidate in candidates:
        if candidate in graph and graph.nodes[candidate].get("type") not in ("module", "framework"):
            return neighbourhood(graph, candidate, depth)
    fail_usage(f"--focus {focus}: no such note in the vault (give its path, e.g. techniques/evasion.md)")
    raise AssertionError("unreachable")


def _answers(graph: nx.MultiDiGraph, asked: list[str], fmt: str) -> tuple[str, int]:
    from fmbuild.graph import coverage as cov

    lists = {
        "uncovered": cov.uncovered,
        "unverified_controls": cov.unverified_controls,
        "orphans": cov.orphans,
    }
    data: dict[str, Any] = {}
    findings = 0
    for question in asked:
        if question in lists:
            nodes = lists[question](graph)
            findings += len(nodes)
            data[question] = [_row(graph, n) for n in nodes]
        elif question == "coverage":
            data[question] = cov.coverage_summary(graph)
        else:
            data[question] = cov.matrix_as_dict(graph)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n", findings
    return "\n\n".join(_TEXT[q](graph, data[q]) for q in asked) + "\n", findings


def _row(graph: nx.MultiDiGraph, node: str) -> dict[str, Any]:
    from fmbuild.graph.queries import controls_of

    attrs = graph.nodes[node]
    row: dict[str, Any] = {"id": node, "title": attrs.get("title"), "type": attrs.get("type")}
    if "evidence_status" in attrs:
        row["evidence"] = attrs.get("evidence_status")
        row["evidence_detail"] = attrs.get("evidence_detail")
    if attrs.get("type") == "technique":
        row["controls"] = [
            {"id": c, "verified": bool(graph.nodes[c].get("verified")), "evidence": graph.nodes[c].get("evidence_status")}
            for c, _ in controls_of(graph, node)
        ]
    return row


# --- text renderings --------------------------------------------------------------------------


def _text_uncovered(graph: nx.MultiDiGraph, rows: list[dict[str, Any]]) -> str:
    total = sum(1 for _n, a in graph.nodes(data=True) if a.get("type") == "technique" and not a.get("deprecated"))
    lines = [f"Techniques with no verified control: {len(rows)} of {total}"]
    for row in rows:
        controls = ", ".join(f"{c['id']} ({c['evidence'] or 'unverified'})" for c in row["controls"]) or "no control at all"
        lines.append(f"  {row['id']}  {row['title']}  <- {controls}")
    return "\n".join(lines)


def _text_unverified(graph: nx.MultiDiGraph, rows: list[dict[str, Any]]) -> str:
    lines = [f"Controls whose evidence is not verified: {len(rows)}"]
    for row in rows:
        why = row.get("evidence_detail") or row.get("evidence") or "maturity is not verified"
        lines.append(f"  {row['id']}  {row['title']} [{row['type']}]: {why}")
    return "\n".join(lines)


def _text_orphans(graph: nx.MultiDiGraph, rows: list[dict[str, Any]]) -> str:
    lines = [f"Notes nothing links to: {len(rows)}"]
    lines += [f"  {row['id']}  {row['title']} [{row['type']}]" for row in rows]
    return "\n".join(lines)


def _text_coverage(graph: nx.MultiDiGraph, summary: dict[str, Any]) -> str:
    n = summary["techniques"]
    pct = f" ({summary['verified_ratio']:.0%})" if summary["verified_ratio"] is not None else ""
    atlas_version = summary["frameworks"].get("atlas", "?")
    lines = [
        (f"Techniques: {n}; with a control: {summary['with_control']}; "
        f"with a verified control: {summary['with_verified_control']}{pct}"),
        (f"Controls: {_count(summary['patterns'], 'pattern')}, {_count(summary['anti_patterns'], 'anti-pattern')}; "
        f"verified: {summary['verified_controls']}; patterns mitigating nothing: {summary['idle_patterns']}"),
    ]
    if summary["by_tactic"]:
        lines.append(f"By ATLAS tactic (ATLAS {atlas_version}):")
        width = max(len(t["name"]) for t in summary["by_tactic"])
        for t in summary["by_tactic"]:
            lines.append(
                f"  {t['tactic']:<11} {t['name']:<{width}}  techniques {t['techniques']:>3}  "
                f"with control {t['with_control']:>3}  verified {t['with_verified_control']:>3}"
            )
    if summary["techniques_without_atlas_tactic"]:
        lines.append(f"Techniques naming no ATLAS technique: {summary['techniques_without_atlas_tactic']}")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _text_matrix(graph: nx.MultiDiGraph, data: dict[str, Any]) -> str:
    lines = [f"Technique x control matrix: {len(data['techniques'])} techniques, {len(data['controls'])} controls"]
    by_technique: dict[str, list[dict[str, Any]]] = {}
    for cell in data["cells"]:
        by_technique.setdefault(cell["technique"], []).append(cell)
    for technique in data["techniques"]:
        lines.append(f"  {technique['id']}  {technique['title']}")
        for cell in by_technique.get(technique["id"], []):
            mark = "verified" if cell["verified"] else "unverified"
            lines.append(f"    {cell['edge']:<9} by {cell['control']} ({mark})")
        if technique["id"] not in by_technique:
            lines.append("    (no control)")
    return "\n".join(lines)


_TEXT = {
    "uncovered": _text_uncovered,
    "unverified_controls": _text_unverified,
    "orphans": _text_orphans,
    "coverage": _text_coverage,
    "matrix": _text_matrix,
}


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        echo(text, nl=False)
        return
    # Atomic: a reader never sees half a file, and a failed write leaves the old one.
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        echo(f"fmbuild: error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    echo(f"wrote {output}", err=True)
