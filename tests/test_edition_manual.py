"""The compiled manual: chapter order, in-document links, numbers from records, escaping, and
nothing that would make a request."""

from __future__ import annotations

import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_edition_support import fmbuild, make_repo

pytest_plugins = ["test_edition_support"]


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


def with_images(root: Path) -> None:
    (root / "vault" / "attachments").mkdir()
    (root / "vault" / "attachments" / "dot.png").write_bytes(tiny_png())
    reading = root / "vault" / "sources" / "reading.md"
    reading.write_text(reading.read_text() + "\n![[attachments/dot.png|A dot|40]]\n\n"
                       "![remote plot](https://example.org/plot.png)\n\n[[#Reading list]]\n\n"
                       "![[patterns/score-monitoring#Monitoring the scores]]\n\n![[sources/reading]]\n\n"
                       "Inline ![[playbooks/triage]] stays a link.\n", encoding="utf-8")


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.loads: list[tuple[str, str, str]] = []  # (tag, attribute, value) that could fetch
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            value = value or ""
            if key == "id":
                self.ids.append(value)
            if key == "href" and tag == "a":
                self.hrefs.append(value)
            if key in ("src", "srcset", "poster", "data") or (key == "href" and tag != "a"):
                self.loads.append((tag, key, value))


@pytest.fixture
def manual(recorded_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    repo = make_repo(recorded_project, tmp_path / "repo", edit=with_images)
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1")
    assert result.exit_code == 0, result.output
    return (repo / "editions" / "2026.1" / "manual.html").read_text(encoding="utf-8")


def test_notes_follow_the_chapters_with_a_table_of_contents(manual: str) -> None:
    order = [manual.index(f'id="{anchor}"') for anchor in (
        "contents", "chapter-1", "chapter-4", "note-techniques-threshold-evasion", "chapter-6",
        "note-patterns-score-monitoring", "chapter-11", "note-playbooks-triage", "unplaced", "note-sources-reading")]
    assert order == sorted(order)
    toc = manual[manual.index('<nav id="contents">'):manual.index("</nav>")]
    for title in ("Threshold evasion", "Score monitoring", "Triage of a quiet evasion", "4. Threat Modeling Machine Learning"):
        assert title in toc
    assert "No note in this chapter yet." in manual  # chapter 1 is empty, and says so


def test_every_link_lands_on_an_anchor_of_the_document(manual: str) -> None:
    page = Collector()
    page.feed(manual)
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    internal = [h for h in page.hrefs if h.startswith("#")]
    assert internal and all(h[1:] in page.ids for h in internal)
    # Wikilinks, with headings, aliases and block ids, resolved by the project's resolver.
    assert '<a href="#note-patterns-score-monitoring--monitoring-the-scores">the control</a>' in manual
    assert '<a href="#note-playbooks-triage">triage</a>' in manual
    assert '<a href="#note-techniques-threshold-evasion--block-intro">Threshold evasion</a>' in manual
    assert '<p id="note-techniques-threshold-evasion--block-intro">An attacker keeps' in manual
    assert "<code>[[not-a-link]]</code>" in manual  # code stays code


def test_numbers_come_from_the_record_and_run_text_is_escaped(manual: str, recorded_project: Path) -> None:
    import json

    metrics = json.loads((recorded_project / "evidence" / "ed-count" / "record" / "metrics.json").read_text())
    assert f">{metrics['flagged_rate']:.1%}</span> of" in manual
    assert f">{metrics['points']}</span> points" in manual
    assert "&lt;img src=x onerror=alert(1)&gt;" in manual and "<img src=x" not in manual
    assert "<td><code>flagged_rate</code></td><td><code>&lt;= 0.2</code></td>" in manual
    assert "state-passing" in manual


def test_the_manual_loads_nothing(manual: str) -> None:
    page = Collector()
    page.feed(manual)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.loads and all(value.startswith("data:image/png;base64,") for _tag, _key, value in page.loads)
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'' in manual
    assert re.search(r"url\(", manual) is None and "@import" not in manual
    assert '<a class="remote-image" href="https://example.org/plot.png">remote plot</a>' in manual
    assert 'alt="A dot" width="40"' in manual
    assert "<kbd>Ctrl</kbd>" in manual  # allowed HTML passes, everything else is text


def test_callouts_become_marked_blockquotes(manual: str) -> None:
    assert '<blockquote class="callout callout-warning">\n<p><strong>What broke</strong>\n' in manual
    assert "[!warning]" not in manual


def test_embeds_are_transcluded_without_duplicate_ids(manual: str) -> None:
    start = manual.index('<div class="embed">')
    embed = manual[start:manual.index("</div>", start)]
    assert 'href="#note-patterns-score-monitoring--monitoring-the-scores"' in embed  # where it comes from
    assert "Track the distribution, not only the verdicts" in embed  # the section itself
    assert " id=" not in embed  # its ids stay on the note's own copy
    assert manual.count('<div class="embed">') == 1  # a note embedding itself gets a link, not a loop
    assert '<a class="embed" href="#note-sources-reading">Reading list</a>' in manual
    assert 'Inline <a class="embed" href="#note-playbooks-triage">Triage of a quiet evasion</a> stays a link.' in manual


HOSTILE_VALUE = "[click](javascript:alert(1)) ![x](https://evil.example/m.png) <b onmouseover=alert(2)>*b*</b>"


def with_hostile_metric(root: Path, spec: str = ":>99999999999") -> None:
    import json

    for name in ("metrics.json", "record.json"):
        path = root / "evidence" / "ed-count" / "record" / name
        data = json.loads(path.read_text(encoding="utf-8"))
        (data["metrics"] if name == "record.json" else data)["banner"] = HOSTILE_VALUE
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    note = next(p for p in (root / "vault").rglob("*.md") if "{{evidence:" in p.read_text(encoding="utf-8"))
    note.write_text(note.read_text(encoding="utf-8")
                    + f"\nBanner: {{{{evidence:ed-count/banner}}}}; width {{{{evidence:ed-count/points{spec}}}}}.\n",
                    encoding="utf-8")


def test_a_metric_in_prose_is_text(recorded_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import html as html_mod

    repo = make_repo(recorded_project, tmp_path / "repo", edit=lambda root: with_hostile_metric(root, spec=""))
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1", "--allow-unverified")
    assert result.exit_code == 0, result.output
    manual = (repo / "editions" / "2026.1" / "manual.html").read_text(encoding="utf-8")
    spans = re.findall(r'<span class="metric"[^>]*>(.*?)</span>', manual, re.S)
    assert html_mod.escape(HOSTILE_VALUE, quote=True) in spans  # the run's text, exactly, as text
    page = Collector()
    page.feed(manual)
    assert not any("evil.example" in v or v.startswith("javascript:") for _t, _k, v in page.loads)
    assert not any(h.startswith("javascript:") for h in page.hrefs)


def test_cut_refuses_an_unbounded_format_spec_instead_of_allocating(recorded_project: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(recorded_project, tmp_path / "repo", edit=with_hostile_metric)
    result = fmbuild(monkeypatch, repo, "edition", "cut", "2026.1", "--allow-unverified")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error[metric-format-invalid] format spec '>99999999999': width 99999999999 is over 40" in result.output
    assert not (repo / "editions" / "2026.1").exists()
