"""A note's page: title, badges, tags, framework IDs, the converted body, the evidence panel,
the note's relations in the graph and its backlinks."""

from __future__ import annotations

import copy
import html
from typing import Any

from fmbuild import frameworks
from fmbuild.evidence.contract import read_evidence_block
from fmbuild.evidence.judgement import ClaimJudgement, judge_all
from fmbuild.graph import queries
from fmbuild.graph.model import FRAMEWORK_FIELDS, MODULE_PREFIX
from fmbuild.site import urls
from fmbuild.site.pages.local_graph import local_graph
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, md_escape, title_of
from fmbuild.site.evidence_view import ModuleEvidence, format_value
from fmbuild.site.pages import Page, render_html
from fmbuild.site.steps_view import steps_panel
from fmbuild.vault.model import LinkKind, Note

# (edge type, outgoing) -> heading of the group on the page
RELATION_LABELS: dict[tuple[str, bool], str] = {
    ("mitigates", True): "Mitigates",
    ("mitigates", False): "Mitigated by",
    ("enables", True): "Enables",
    ("enables", False): "Enabled by",
    ("covers", True): "Covers",
    ("covers", False): "Covered by playbooks",
    ("applies", True): "Applies",
    ("applies", False): "Applied by playbooks",
    ("evidenced-by", True): "Evidenced by",
}


def note_page(note: Note, ctx: SiteContext) -> Page:
    page = docs_path(note)
    anchors = ctx.site.anchors_of(note)
    ids = copy.deepcopy(anchors.ids)  # embeds and sections below take further ids on this page
    body = ctx.converter.page_body(note, page, ids).strip("\n")
    meta = _meta_block(note, page, ctx)
    title = title_of(note)
    if anchors.title_heading:
        parts = [f"# {md_escape(title)} {{ #{anchors.title_id} }}", "", meta, "", body]
    else:  # the body opens with its own H1: the badges go right under it
        first, _, rest = body.partition("\n")
        parts = [first, "", meta, "", rest]
    deprecated = _deprecation(note, page, ctx)
    if deprecated:
        parts[3:3] = [deprecated, ""]
    module = ctx.evidence.for_note(note)
    if module is not None:
        parts += ["", f"## Evidence {{ #{ids.allocate('evidence')} }}", "", evidence_panel(note, module, page, ctx)]
    steps = steps_panel(note, ctx.config)
    if steps:
        parts += ["", f"## Steps run {{ #{ids.allocate('steps-run')} }}", "", steps]
    relations = _relations(note, page, ctx)
    if relations:
        drawn = local_graph(note, page, ctx)
        parts += ["", f"## Relations {{ #{ids.allocate('relations')} }}", "", *([drawn, ""] if drawn else []), relations]
    backlinks = _backlinks(note, page, ctx)
    if backlinks:
        parts += ["", f"## Backlinks {{ #{ids.allocate('backlinks')} }}", "", backlinks]
    return Page(page, title, "\n".join(parts), {"fm_type": note.type or "note"})


# --- header ---------------------------------------------------------------------------------------


def _meta_block(note: Note, page: str, ctx: SiteContext) -> str:
    chapter = None
    number = note.frontmatter.get("chapter")
    if ctx.config is not None and isinstance(number, int) and not isinstance(number, bool):
        found = ctx.config.chapter(number)
        if found is not None:
            chapter = {
                "number": found.number,
                "title": found.title,
                "url": urls.relative_url(page, urls.GROWTH_MAP) + f"#chapter-{found.number}",
            }
    tags = [
        {"name": name, "url": urls.relative_url(page, urls.tag_page(name))}
        for name in dict.fromkeys(t.name for t in note.tags)
    ]
    dates = []
    for key in ("created", "updated"):
        value = note.date(key)
        if value is not None:
            dates.append(f"{key} {value.isoformat()}")
    return render_html(
        "note_meta.html",
        note_type=note.type,
        maturity=note.maturity,
        chapter=chapter,
        tags=tags,
        frameworks=framework_links(note),
        dates=" · ".join(dates),
        deprecated=None,
    )


def framework_links(note: Note) -> list[dict[str, Any]]:
    found = []
    for key in FRAMEWORK_FIELDS:
        value = note.frontmatter.get(key)
        values = value if isinstance(value, list) else [value] if value is not None else []
        for raw in values:
            if not isinstance(raw, (str, int)):
                continue
            entry = frameworks.lookup(str(raw))
            if entry is None:
                found.append({"id": str(raw), "name": "", "url": "", "title": "not in the shipped reference lists"})
            else:
                found.append({"id": entry.id, "name": entry.name, "url": entry.url, "title": entry.label})
    return found


def _deprecation(note: Note, page: str, ctx: SiteContext) -> str:
    if note.maturity != "deprecated":
        return ""
    lines = ['!!! warning "Deprecated"', ""]
    successor = next((l for l in note.links if l.kind is LinkKind.PROPERTY and l.field == "successor"), None)
    if successor is not None:
        res = ctx.site.resolver.resolve_link(successor, note)
        target = ctx.vault.notes.get(res.path or "") if res.ok and res.is_note else None
        if target is not None:
            href = urls.relative_md(page, docs_path(target))
            lines.append(f"    Replaced by [{md_escape(title_of(target))}]({href}).")
    reason = note.frontmatter.get("deprecated_reason")
    if isinstance(reason, str) and reason.strip():
        lines.append(f"    {md_escape(reason.strip())}")
    return "\n".join(lines) if len(lines) > 2 else ""


# --- evidence --------------------------------------------------------------------------------------


def seed_span(j: ClaimJudgement) -> str:
    """The measured range over the judged seeds ('' when there is none: not numeric, no record)."""
    if j.low is None or j.high is None:
        return ""
    return format_value(j.low) if j.low == j.high else f"{format_value(j.low)}–{format_value(j.high)}"


def evidence_panel(note: Note, module: ModuleEvidence, page: str, ctx: SiteContext) -> str:
    record = module.record
    block = read_evidence_block(note.frontmatter.get("evidence"), ctx.evidence_path)
    standard = ctx.config.evidence.seeds if ctx.config else None
    claims = []
    # The note's current claims, judged on every recorded seed exactly as the manual and
    # `fmbuild check` judge them (`evidence.judgement`).
    for j in judge_all(block.claims if block else [], record, standard):
        claims.append({
            "metric": j.metric,
            "expected": j.expected,
            "measured": "not measured" if j.measured is None else format_value(j.measured),
            "range": seed_span(j),
            "worst": "" if j.worst_margin is None else f"{j.worst_margin:+.4g}",
            "ok": j.ok,
            "verdict": j.verdict,
            "message": "" if j.ok else j.message,
        })
    values: dict[str, Any] = {
        "module": module,
        "status": module.status,
        "status_class": module.status.replace(" ", "-"),
        "evidence_path": ctx.evidence_path,
        "claims": claims,
        "record": record,
        "duration": "",
        "env": {},
        "packages": [],
        "images": [],
        "files": [],
        "withheld": [],
        "log_url": "",
        "seeds_shown": ", ".join(str(x) for x in record.seeds) if record is not None else "",
    }
    if record is not None:
        env = record.environment if isinstance(record.environment, dict) else {}
        packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
        values["duration"] = f"{record.duration_s:.1f} s" if isinstance(record.duration_s, (int, float)) else str(record.duration_s)
        values["env"] = {"python": env.get("python", "?"), "platform": env.get("platform", "")}
        values["packages"] = sorted((str(k), str(v)) for k, v in packages.items())
        for artifact in module.artifacts:
            url = urls.relative_url(page, f"{module.docs_dir}/{artifact.name}", to_is_docs=False)
            if artifact.kind == "image":
                values["images"].append({"name": artifact.name, "url": url})
            elif artifact.kind == "data":
                values["files"].append({"name": artifact.name, "url": url})
            else:
                values["withheld"].append(artifact.name)
        if (module.folder / "record" / "log.txt").is_file():
            values["log_url"] = urls.relative_url(page, f"{module.docs_dir}/log.txt", to_is_docs=False)
    return render_html("evidence_panel.html", **values)


# --- graph neighbourhood -------------------------------------------------------------------------------


def _relations(note: Note, page: str, ctx: SiteContext) -> str:
    if note.path not in ctx.graph:
        return ""
    groups: dict[str, list[str]] = {}
    for n in queries.neighbours(ctx.graph, note.path):
        label = RELATION_LABELS.get((str(n.edge), n.outgoing))
        if label is None:
            continue
        item = _node_link(n.node, page, ctx)
        if item is None:
            continue
        use = n.attrs.get("use")
        if isinstance(use, str) and use.strip():
            item += f" — {md_escape(use.strip())}"
        groups.setdefault(label, []).append(f"- {item}")
    if not groups:
        return ""
    lines = []
    for label in dict.fromkeys(RELATION_LABELS.values()):
        if label in groups:
            lines += [f"**{label}**", "", *groups[label], ""]
    graph_href = urls.relative_md(page, urls.GRAPH)
    lines.append(f"[Show in the graph]({graph_href}?focus={_query(note.path)}){{ .fm-graph-link }}")
    return "\n".join(lines)


def _node_link(node: str, page: str, ctx: SiteContext) -> str | None:
    target = ctx.vault.notes.get(node)
    if target is not None:
        badge = ""
        if target.maturity:
            level = html.escape(target.maturity)
            badge = f' <span class="fm-badge fm-maturity--{level}">{level}</span>'

        return f"[{md_escape(title_of(target))}]({urls.relative_md(page, docs_path(target))}){badge}"
    if node.startswith(MODULE_PREFIX):
        name = node[len(MODULE_PREFIX):].rsplit("/", 1)[-1]
        module = ctx.evidence.named(name)
        status = module.status if module else "not run"
        href = urls.relative_md(page, urls.EVIDENCE_REPORT) + f"#module-{name}"
        return f"[`{md_escape(node[len(MODULE_PREFIX):])}`]({href}) ({status})"
    return None


def _backlinks(note: Note, page: str, ctx: SiteContext) -> str:
    if note.path not in ctx.graph:
        return ""
    items = []
    for source in queries.backlinks(ctx.graph, note.path):
        target = ctx.vault.notes.get(source)
        if target is not None:
            items.append(f"- [{md_escape(title_of(target))}]({urls.relative_md(page, docs_path(target))})")
    return "\n".join(items)


def _query(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
