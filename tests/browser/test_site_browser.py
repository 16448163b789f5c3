"""The built site in a real browser: Debian's Chromium, headless, driven by Playwright.

The fixture project is built once, served from a local http.server on 127.0.0.1, and every
request the browser makes to any other host is blocked and recorded (the site must make none).
Screenshots land in test-artifacts/site/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

from browser.sitekit import build, copy_fixture, serve

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "site"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (Debian package chromium)"),
]


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = copy_fixture(tmp_path_factory.mktemp("site") / "project")
    report = build(root, strict=True)
    assert report.mkdocs_warnings == []
    with serve(report.output) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Watch:
    """One browser page with its console errors, page errors, dialogs and outside requests."""

    def __init__(self, browser: object, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        host = urlsplit(base).netloc
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

        def guard(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about") or parts.netloc == host:
                route.continue_()  # type: ignore[attr-defined]
            else:
                self.outside.append(url)
                route.abort()  # type: ignore[attr-defined]

        self.context.route("**/*", guard)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left the site: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.dialogs == [], f"a dialog opened (script ran?): {self.dialogs}"


@pytest.fixture
def watch(browser: object, site_url: str) -> Iterator[Watch]:
    w = Watch(browser, site_url)
    try:
        yield w
    finally:
        w.close()


def test_home_dashboard(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(site_url)
    assert "Site Test Manual" in page.title()
    cards = page.locator(".fm-card")
    assert cards.count() == 4
    assert "Evidence passing" in page.locator(".fm-cards").inner_text()
    assert page.locator("h2#notes-by-type").count() == 1
    # the version selector lists the living manual and the Edition (versions.json, mike's format)
    page.wait_for_selector(".md-version__link", state="attached")
    titles = page.locator(".md-version__link").all_inner_texts()
    assert titles == ["Living manual", "Edition 2026.1"]
    watch.shot("home")
    watch.assert_clean()


def test_technique_page_evidence_panel(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "techniques/evasion/"))
    panel = page.locator(".fm-evidence")
    assert panel.count() == 1
    text = panel.inner_text()
    assert "passed" in text
    assert "0.9733" in text and "0.1187" in text  # measured values from the record
    assert ">= 0.9" in text and "<= 0.3" in text  # expected values from the note
    assert "bubblewrap" in text and "12.3 s" in text and "cpu" in text
    # prose numbers come from the record, with the author's format
    metrics = page.locator(".fm-metric").all_inner_texts()
    assert metrics[:2] == ["97.3%", "0.1187"]
    # the log's <script> line is shown as text and never runs
    page.locator(".fm-log summary").click()
    assert '<script>alert("log")</script>' in page.locator(".fm-log pre").inner_text()
    assert page.locator(".fm-evidence img").count() == 1
    assert page.locator(".fm-evidence img").evaluate("img => img.naturalWidth") > 0
    watch.shot("technique")
    watch.assert_clean()


def test_graph_renders_nodes(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "graph/"))
    page.wait_for_selector("#fm-graph-canvas[data-ready='true']", timeout=20_000)
    nodes = page.evaluate("window.fmGraph.nodes().length")
    edges = page.evaluate("window.fmGraph.edges().length")
    assert nodes >= 5 and edges >= 3
    assert page.locator("#fm-graph-canvas canvas").count() > 0
    # filtering by type hides the technique nodes
    before = int(page.get_attribute("#fm-graph-canvas", "data-rendered-nodes") or 0)
    page.locator(".fm-graph__filter input[value='technique']").uncheck()
    after = int(page.get_attribute("#fm-graph-canvas", "data-rendered-nodes") or 0)
    assert after < before
    watch.shot("graph")
    watch.assert_clean()


def test_graph_separates_kinds_names_on_hover_and_goes_to_a_search(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "graph/"))
    page.wait_for_selector("#fm-graph-canvas[data-ready='true']", timeout=20_000)
    # One column per kind: every technique shares one x, every pattern another.
    columns = page.evaluate("""() => { const by = {};
        window.fmGraph.nodes().forEach(n => { (by[n.data('type')] = by[n.data('type')] || new Set()).add(n.position('x')); });
        return Object.fromEntries(Object.entries(by).map(([k, v]) => [k, [...v]])); }""")
    assert len(columns["technique"]) == 1 and len(columns["pattern"]) == 1, columns
    assert columns["technique"] != columns["pattern"] and columns["pattern"] != columns["module"]
    legend = page.locator(".fm-graph__legend").inner_text()
    for word in ("Nodes", "technique", "pattern", "module", "Edges", "mitigates", "covers"):
        assert word in legend, legend
    # Hovering a node names it and its neighbours whatever the zoom.
    x, y = page.evaluate(
        """() => { window.fmGraph.zoom(0.3); const n = window.fmGraph.getElementById('techniques/evasion.md');
                   const box = document.getElementById('fm-graph-canvas').getBoundingClientRect();
                   const p = n.renderedPosition(); return [box.left + p.x, box.top + p.y]; }""")
    page.mouse.move(x, y)
    page.wait_for_function("window.fmGraph.getElementById('techniques/evasion.md').hasClass('fm-hover')")
    named = page.evaluate("window.fmGraph.nodes('.fm-hover').map(n => n.data('label'))")
    assert "Adversarial training" in named, named
    page.mouse.move(1, 1)
    # Search, then Enter: the view goes to the hit and its neighbours.
    page.evaluate("window.fmGraph.zoom(0.2); window.fmGraph.pan({x: -5000, y: -5000})")
    page.locator(".fm-graph__search").fill("Adversarial training")
    page.locator(".fm-graph__search").press("Enter")
    inside = page.evaluate("""() => { const n = window.fmGraph.nodes('.fm-hit')[0]; const p = n.renderedPosition();
        const c = document.getElementById('fm-graph-canvas'); return p.x > 0 && p.y > 0 && p.x < c.clientWidth && p.y < c.clientHeight; }""")
    assert inside
    watch.shot("graph-search")
    watch.assert_clean()


def test_graph_click_opens_note(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "graph/?focus=techniques%2Fevasion.md"))
    page.wait_for_selector("#fm-graph-canvas[data-ready='true']", timeout=20_000)
    # a real mouse click where Cytoscape drew the node
    x, y = page.evaluate(
        """() => { const n = window.fmGraph.getElementById('techniques/evasion.md');
                   const box = document.getElementById('fm-graph-canvas').getBoundingClientRect();
                   const p = n.renderedPosition(); return [box.left + p.x, box.top + p.y]; }"""
    )
    with page.expect_navigation(timeout=10_000):
        page.mouse.click(x, y)
    assert page.url.rstrip("/").endswith("techniques/evasion")
    watch.assert_clean()


def test_search_finds_a_known_note(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(site_url)
    box = page.locator("input.md-search__input")
    box.click()
    box.press_sequentially("adversarial training", delay=20)  # Material searches on keyup
    result = page.locator(".md-search-result__item a").first
    result.wait_for(timeout=20_000)
    hrefs = page.locator(".md-search-result__item a").evaluate_all("els => els.map(e => e.href)")
    assert any("patterns/adversarial-training" in h for h in hrefs)
    watch.shot("search")
    watch.assert_clean()


def test_evidence_report_sorts(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "evidence/"))
    header = page.locator("table.fm-sortable th", has_text="Duration")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    watch.shot("evidence-report")
    for rel, name in (("coverage/", "coverage"), ("growth-map/", "growth-map")):
        page.goto(urljoin(site_url, rel))
        watch.shot(name)
    assert page.locator("#chapter-4").count() == 1
    watch.assert_clean()


def test_tables_stay_readable(watch: Watch, site_url: str) -> None:
    """The matrix keeps its headings in view when scrolled in its own box, technique names wrap
    by words, and the evidence report keeps each run's isolation and environment folded."""
    page = watch.page
    page.set_viewport_size({"width": 700, "height": 600})  # narrow: the matrix must scroll sideways
    page.goto(urljoin(site_url, "coverage/"))
    wrap = page.locator(".fm-matrix-wrap")
    page.evaluate("document.querySelector('.fm-matrix tbody th').innerHTML += ' Adversarial Examples Everywhere'")
    geometry = page.evaluate("""() => {
        const wrap = document.querySelector('.fm-matrix-wrap');
        const table = wrap.querySelector('table');
        // A manual's worth of cells: more columns and rows than the box holds, so it must scroll.
        for (const tr of table.querySelectorAll('tr')) {
            const last = tr.lastElementChild;
            for (let i = 0; i < 40; i++) tr.appendChild(last.cloneNode(true));
        }
        const body = table.querySelector('tbody'), row = body.lastElementChild;
        for (let i = 0; i < 60; i++) body.appendChild(row.cloneNode(true));
        wrap.scrollTop = 400; wrap.scrollLeft = 600;
        const box = wrap.getBoundingClientRect();
        const head = wrap.querySelector('thead th:nth-child(2)').getBoundingClientRect();
        const first = wrap.querySelector('tbody tr th').getBoundingClientRect();
        const style = getComputedStyle(wrap.querySelector('tbody th'));
        return {scrolled: wrap.scrollTop > 0 && wrap.scrollLeft > 0, boxTop: box.top, headTop: head.top,
                boxLeft: box.left, firstLeft: first.left, width: first.width,
                lineHeight: parseFloat(style.lineHeight) || 16, height: first.height};
    }""")
    assert wrap.count() == 1 and geometry["scrolled"], geometry
    assert abs(geometry["headTop"] - geometry["boxTop"]) < 2, geometry  # the header row stays on top
    assert abs(geometry["firstLeft"] - geometry["boxLeft"]) < 2, geometry  # the technique column stays left
    assert geometry["width"] > 150 and geometry["height"] < 6 * geometry["lineHeight"], geometry  # words, not letters
    watch.shot("coverage-scrolled")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(urljoin(site_url, "evidence/"))
    headers = page.locator("table.fm-report thead th").all_inner_texts()
    assert [h.strip() for h in headers] == ["Module", "Status", "Claims met", "Duration (s)", "Device", "Date", "Notes", "Run"]
    details = page.locator("table.fm-report details.fm-run-details").first
    assert details.get_attribute("open") is None
    isolation = details.locator("dd").first
    assert not isolation.is_visible()
    row = page.locator("table.fm-report tbody tr").first.bounding_box()
    assert row is not None and row["height"] < 90, row  # one module is a row, not a screen
    details.locator("summary").click()
    assert isolation.is_visible() and isolation.inner_text().strip()
    watch.shot("evidence-report-details")
    watch.assert_clean()


def test_link_previews_show_the_target_page_text(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "techniques/evasion/"))
    link = page.locator("article.md-content__inner a[href*='patterns/']").first
    href = link.get_attribute("href")
    assert href, "the technique page links to no pattern"
    link.hover()
    tip = page.locator(".fm-preview")
    tip.wait_for(state="visible", timeout=5000)
    title = tip.locator(".fm-preview__title").inner_text().strip()
    text = tip.locator(".fm-preview__text").inner_text().strip()
    target = watch.context.new_page()
    target.goto(urljoin(page.url, href))
    assert title == target.locator("article h1").first.inner_text().replace("\u00b6", "").strip()
    assert len(text) >= 20 and text.split()[0] in target.locator("article").inner_text()
    target.close()
    assert link.get_attribute("aria-describedby") == "fm-preview"
    watch.shot("link-preview")
    page.mouse.move(5, 5)
    tip.wait_for(state="hidden", timeout=5000)
    # Keyboard readers get it too, and Escape closes it.
    link.focus()
    tip.wait_for(state="visible", timeout=5000)
    page.keyboard.press("Escape")
    tip.wait_for(state="hidden", timeout=5000)
    assert tip.locator("script, img, a").count() == 0  # text only
    watch.assert_clean()


def test_atlas_matrix_places_a_technique_under_its_tactic(watch: Watch, site_url: str) -> None:
    from fmbuild import frameworks

    page = watch.page
    page.goto(urljoin(site_url, "atlas-matrix/"))
    headers = [h.split("\n")[0].strip() for h in page.locator("table.fm-atlas thead th").all_inner_texts()]
    assert headers == [t.name for t in frameworks.entries(frameworks.ATLAS, "tactic")]
    technique = frameworks.lookup("AML.T0043")  # the fixture's evasion note maps to it
    for tactic in technique.tactics:
        column = headers.index(frameworks.lookup(tactic).name) + 1
        cell = page.locator(f"table.fm-atlas tbody td:nth-child({column}) .fm-atlas__cell",
                            has=page.locator("a.fm-atlas__id", has_text="AML.T0043"))
        assert cell.count() == 1
        assert "fm-atlas--verified" in (cell.get_attribute("class") or "")  # adversarial training is verified
        note = cell.locator(".fm-atlas__notes a")
        assert note.inner_text() == "Evasion: FGSM against a digits classifier"
    # Techniques the manual does not cover are there too, pale.
    assert page.locator("table.fm-atlas .fm-atlas--uncovered").count() > 50
    # The header row stays in view while the matrix scrolls in its own box.
    top = page.evaluate("""() => { const w = document.querySelector('.fm-atlas-wrap'); w.scrollTop = 300;
        return [w.getBoundingClientRect().top, w.querySelector('thead th').getBoundingClientRect().top]; }""")
    assert abs(top[0] - top[1]) < 2, top
    watch.shot("atlas-matrix")
    watch.assert_clean()


def test_local_graph_draws_the_notes_neighbours(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "techniques/evasion/"))
    graph = page.locator(".fm-local-graph")
    assert graph.count() == 1
    centre = graph.locator(".fm-local-graph__node--centre")
    assert centre.inner_text().strip() == "Evasion: FGSM against a digits classifier"
    nodes = {n.inner_text().strip(): n for n in graph.locator("a.fm-local-graph__node").all()}
    # Its neighbours by typed edge: the control that mitigates it, the playbook, the evidence module.
    assert set(nodes) == {"Adversarial training", "Red-team playbook", "evidence/toy-evasion"}, set(nodes)
    assert "fm-type--pattern" in (nodes["Adversarial training"].get_attribute("class") or "")
    boxes = {name: n.bounding_box() for name, n in nodes.items()}
    middle = centre.bounding_box()
    assert boxes["Adversarial training"]["x"] > middle["x"] + middle["width"]  # controls to the right
    assert boxes["evidence/toy-evasion"]["y"] > middle["y"] + middle["height"]  # modules and playbooks beneath
    assert graph.locator("svg line").count() == 3
    for name, box in boxes.items():  # legible: none overlaps another
        for other, second in boxes.items():
            if name < other:
                apart = (box["x"] + box["width"] <= second["x"] or second["x"] + second["width"] <= box["x"]
                         or box["y"] + box["height"] <= second["y"] or second["y"] + second["height"] <= box["y"])
                assert apart, (name, other)
    watch.shot("local-graph")
    nodes["Adversarial training"].click()
    page.wait_for_url("**/patterns/adversarial-training/")
    assert page.locator(".fm-local-graph__node--centre").inner_text().strip() == "Adversarial training"
    watch.assert_clean()


def test_edition_banner_links_back(watch: Watch, site_url: str) -> None:
    page = watch.page
    page.goto(urljoin(site_url, "editions/2026.1/"))
    banner = page.locator("#fm-edition-banner")
    assert "Edition 2026.1, frozen on 2026-02-02" in banner.inner_text()
    with page.expect_navigation():
        banner.locator("a").click()
    assert page.url == site_url
    page.goto(urljoin(site_url, "editions/"))
    text = page.locator("article").inner_text()
    assert "Edition 2026.1" in text
    page.locator(".fm-changelog summary").click()
    assert '<script>alert("changelog")</script>' in page.locator(".fm-changelog").inner_text()
    watch.assert_clean()


def test_crawl_every_internal_link_and_anchor(watch: Watch, site_url: str) -> None:
    """Visit every page reachable from the home page; every internal link must load and every
    #anchor must exist on its target page."""
    page = watch.page
    todo = [site_url]
    seen: set[str] = set()
    ids: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []  # (from page, to url)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        response = page.goto(url)
        assert response is not None and response.status == 200, f"{url}: {response and response.status}"
        if "text/html" not in (response.headers.get("content-type") or ""):
            continue
        ids[url] = set(page.evaluate("Array.from(document.querySelectorAll('[id]'), e => e.id)"))
        ids[url] |= set(page.evaluate("Array.from(document.querySelectorAll('a[name]'), e => e.name)"))
        for href in page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.href)"):
            if not href.startswith(site_url):
                continue
            links.append((url, href))
            target, _fragment = urldefrag(href)
            target = target.split("?")[0]
            if target not in seen:
                todo.append(target)
    assert len(seen) >= 15
    broken = []
    for source, href in links:
        target, fragment = urldefrag(href)
        target = target.split("?")[0]
        if fragment and target in ids and unquote(fragment) not in ids[target]:
            broken.append(f"{source} -> {href}")
    assert broken == []
    watch.assert_clean()
