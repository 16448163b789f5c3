"""A hostile note and a hostile run metric in a real browser: the sanitized page runs no
injected handler, opens no dialog and requests nothing from another host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser.sitekit import build, serve
from browser.test_site_browser import CHROMIUM, Watch, browser, pytestmark  # noqa: F401  (fixture, marks)
from test_site_sanitize import hostile_project


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = hostile_project(tmp_path_factory.mktemp("hostile-browser") / "project")
    report = build(root, fail_on_check=False)
    with serve(report.output) as url:  # type: ignore[arg-type]
        yield url


def test_hostile_page_runs_nothing_and_fetches_nothing(browser: object, hostile_url: str) -> None:
    watch = Watch(browser, hostile_url)
    try:
        page = watch.page
        page.add_init_script("window.__fired = []; window.alert = (m) => window.__fired.push(String(m));")
        page.goto(hostile_url + "sources/hostile/", wait_until="networkidle")
        for selector in ("a", "p", "img", "details", "summary", ".fm-metric"):
            for element in page.query_selector_all(f"article {selector}"):
                for event in ("mouseover", "mouseenter", "toggle", "load", "error"):
                    element.dispatch_event(event)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__fired") == []
        assert page.evaluate("document.querySelectorAll('article [onload], article [onmouseover], base').length") == 0
        assert page.query_selector("article .fm-metric").inner_text().startswith("[click](javascript:alert(1))")
        # the theme still works on the sanitized page: search opens and answers
        box = page.locator("input.md-search__input")
        box.click()
        box.press_sequentially("hostile", delay=20)  # Material searches on keyup
        page.locator(".md-search-result__item a").first.wait_for(timeout=20_000)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__fired") == []  # the results render no handler either
        watch.assert_clean()
    finally:
        watch.close()
