"""The home dashboard and the Growth Map: what the manual holds, and what it still lacks."""

from __future__ import annotations

import html
from collections import Counter

from fmbuild.graph import coverage
from fmbuild.site import urls
from fmbuild.site.context import SiteContext
from fmbuild.site.convert import docs_path, md_escape, title_of
from fmbuild.site.pages import Page
from fmbuild.vault.model import Note

TYPE_ORDER = ("technique", "pattern", "anti-pattern", "playbook", "command-sheet", "reference", "source")
DEFAULT_LEVELS = ("draft", "reviewed", "verified", "deprecated")


def note_link(note: Note, page: str) -> str:
    return f"[{md_escape(title_of(note))}]({urls.relative_md(page, docs_path(note))})"


def maturity_badge(level: str | None) -> str:
    if not level:
        return ""
    safe = html.escape(level)
    return f'<span class="fm-badge fm-maturity--{safe}">{safe}</span>'


def _levels(ctx: SiteContext) -> tuple[str, ...]:
    return ctx.config.maturity_levels if ctx.config else DEFAULT_LEVELS


def evidence_counts(ctx: SiteContext) -> Counter[str]:
    counts: Counter[str] = Counter()
    for note in ctx.vault.notes.values():
        ctx.evidence.for_note(note)  # registers every module the vault names
    for module in ctx.evidence.modules.values():
        counts[module.status] += 1
        if module.record is not None and module.fresh is False:
            counts["stale"] += 1
    return counts


def home_page(ctx: SiteContext) -> Page:
    page = urls.HOME
    notes = list(ctx.vault.notes.values())
    levels = _levels(ctx)
    types = [t for t in TYPE_ORDER if any(n.type == t for n in notes)]
    types += sorted({n.type or "untyped" for n in notes} - set(types))
    grid: Counter[tuple[str, str]] = Counter((n.type or "untyped", n.maturity or "none") for n in notes)
    extra_levels = sorted({m for _, m in grid} - set(levels))
    columns = [*levels, *extra_levels]

    lines = [f"# {md_escape(ctx.site_name)} {{ #home }}", ""]
    if ctx.config and ctx.config.site.description:
        lines += [md_escape(ctx.config.site.description), ""]

    counts = evidence_counts(ctx)
    total_modules = len(ctx.evidence.modules)
    passed = counts.get("passed", 0)
    summary = coverage.coverage_summary(ctx.graph)
    techniques = summary.get("techniques", 0)
    cards = [
        ("Notes", str(len(notes)), ""),
        ("Evidence passing", f"{passed} / {total_modules}", _pct(passed, total_modules)),
        ("Techniques with a control", f"{summary.get('with_control', 0)} / {techniques}", _pct(summary.get("with_control", 0), techniques)),
        ("With a verified control", f"{summary.get('with_verified_control', 0)} / {techniques}", _pct(summary.get("with_verified_control", 0), techniques)),
    ]
    lines.append('<div class="fm-cards">')
    for label, value, note in cards:
        lines.append(
            f'<div class="fm-card"><div class="fm-card__value">{html.escape(value)}</div>'
            f'<div class="fm-card__label">{html.escape(label)}</div>'
            + (f'<div class="fm-card__note">{html.escape(note)}</div>' if note else "")
            + "</div>"
        )
    lines += ["</div>", ""]

    lines += ["## Notes by type and maturity { #notes-by-type }", ""]
    lines.append("| Type | " + " | ".join(columns) + " | Total |")
    lines.append("|---|" + "---:|" * (len(columns) + 1))
    for t in types:
        row = [str(grid.get((t, level), 0)) for level in columns]
        total = sum(grid.get((t, level), 0) for level in columns)
        lines.append(f"| {md_escape(t)} | " + " | ".join(row) + f" | {total} |")
    lines.append("")

    report = urls.relative_md(page, urls.EVIDENCE_REPORT)
    lines += ["## Evidence { #evidence-summary }", ""]
    if total_modules:
        parts = [f"{counts.get(s, 0)} {s}" for s in ("passed", "failed", "error", "timeout", "skipped", "not run") if counts.get(s)]
        lines.append(
            f"{passed} of {total_modules} evidence modules pass ({_pct(passed, total_modules)}): "
            + ", ".join(parts) + "."
            + (f" {counts['stale']} record(s) are stale (the module changed since it ran)." if counts.get("stale") else "")
        )
    else:
        lines.append("No evidence module yet.")
    lines += ["", f"See the [evidence report]({report}).", ""]

    lines += ["## Coverage { #coverage-summary }", ""]
    if techniques:
        lines.append(
            f"{summary.get('with_control', 0)} of {techniques} techniques have a control that mitigates them; "
            f"{summary.get('with_verified_control', 0)} have a control whose evidence is verified."
        )
    else:
        lines.append("No technique note yet.")
    coverage_link = urls.relative_md(page, urls.COVERAGE)
    lines += ["", f"See the [coverage matrix]({coverage_link}), the [ATLAS matrix]({urls.relative_md(page, urls.ATLAS_MATRIX)}) "
              f"and the [graph]({urls.relative_md(page, urls.GRAPH)}).", ""]

    recent = sorted((n for n in notes if n.date("updated")), key=lambda n: (n.date("updated"), n.path), reverse=True)[:10]
    if recent:
        lines += ["## Recently updated { #recent }", ""]
        for n in recent:
            lines.append(f"- {note_link(n, page)} {maturity_badge(n.maturity)} <small>{n.date('updated')}</small>")
        lines.append("")

    lines += ["## Explore { #explore }", ""]
    if ctx.config and ctx.config.chapters:
        lines.append(f"- [Growth Map]({urls.relative_md(page, urls.GROWTH_MAP)}): the chapters and what each still lacks")
    lines += [
        f"- [Tags]({urls.relative_md(page, urls.TAGS_INDEX)})",
        f"- [Editions]({urls.relative_md(page, urls.EDITIONS)}): frozen, citable versions of the manual",
    ]
    return Page(page, ctx.site_name, "\n".join(lines), {"hide": ["navigation"]})


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


# --- Growth Map --------------------------------------------------------------------------------------

CONTROL_TYPES = ("pattern", "anti-pattern")


def growth_page(ctx: SiteContext) -> Page:
    page = urls.GROWTH_MAP
    chapters = ctx.config.chapters if ctx.config else ()
    by_chapter: dict[int | None, list[Note]] = {}
    for note in ctx.vault.notes.values():
        number = note.frontmatter.get("chapter")
        key = number if isinstance(number, int) and not isinstance(number, bool) else None
        by_chapter.setdefault(key, []).append(note)
    lines = [
        "# Growth Map { #growth-map }",
        "",
        ("The chapters of the manual, the notes each holds with their maturity, and what each "
         "chapter still lacks. A chapter grows one small, evidenced piece at a time."),
        "",
    ]
    for chapter in chapters:
        notes = sorted(by_chapter.get(chapter.number, []), key=lambda n: (TYPE_ORDER.index(n.type) if n.type in TYPE_ORDER else 9, title_of(n).lower()))
        lines += [f"## {chapter.number}. {md_escape(chapter.title)} {{ #chapter-{chapter.number} }}", ""]
        if chapter.summary:
            lines += [f"*{md_escape(chapter.summary)}*", ""]
        if notes:
            lines += ["| Note | Type | Maturity | Evidence |", "|---|---|---|---|"]
            for n in notes:
                module = ctx.evidence.for_note(n)
                status = module.status if module else "—"
                lines.append(f"| {note_link(n, page)} | {md_escape(n.type or '')} | {maturity_badge(n.maturity)} | {status} |")
            lines.append("")
        lacks = _lacks(notes, ctx)
        lines += ["**Still lacks:**", ""]
        lines += [f"- {item}" for item in lacks] or ["- nothing the tool can see; see what to capture below"]
        lines.append("")
        if chapter.wants:
            lines += ["**To capture:** " + "; ".join(md_escape(w) for w in chapter.wants) + ".", ""]
    orphans = by_chapter.get(None, [])
    if orphans and chapters:
        lines += ["## Notes with no chapter { #no-chapter }", ""]
        lines += [f"- {note_link(n, page)} {maturity_badge(n.maturity)}" for n in sorted(orphans, key=lambda n: n.path)]
    return Page(page, "Growth Map", "\n".join(lines))


def _lacks(notes: list[Note], ctx: SiteContext) -> list[str]:
    if not notes:
        return ["any note: the chapter is empty"]
    lacks = []
    types = {n.type for n in notes}
    if "technique" not in types:
        lacks.append("a technique note")
    if not types & set(CONTROL_TYPES):
        lacks.append("a pattern or anti-pattern (a control)")
    if not any(n.maturity == "verified" for n in notes):
        lacks.append("a verified note (none here has earned maturity: verified yet)")
    unevidenced = [n for n in notes if n.type in ("technique", *CONTROL_TYPES) and ctx.evidence.for_note(n) is None]
    if unevidenced:
        lacks.append(f"evidence for {len(unevidenced)} note(s)")
    failing = [n for n in notes if (m := ctx.evidence.for_note(n)) is not None and m.status != "passed"]
    if failing:
        lacks.append(f"a passing run for {len(failing)} note(s)")
    for n in notes:
        if n.type == "technique" and n.path in ctx.graph:
            from fmbuild.graph.queries import controls_of

            if not controls_of(ctx.graph, n.path):
                lacks.append(f"a control for {title_of(n)}")
    return [md_escape(item) for item in lacks]
