"""`fmbuild build` end to end on the fixture project: MkDocs' validation, the output's safety,
the published evidence and Editions, and the command line's errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from browser.sitekit import SITE_BASIC, build, copy_fixture
from click.testing import CliRunner

from fmbuild.cli import cli
from fmbuild.site.build import BuildError
from fmbuild.site.output import MARKER


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_fixture(tmp_path_factory.mktemp("built") / "project")
    report = build(root, strict=True)
    assert report.mkdocs_warnings == []  # MkDocs' link and anchor validation found nothing
    assert report.output == (root / "site").resolve()
    return root


def html_of(root: Path, rel: str) -> str:
    return (root / "site" / rel).read_text(encoding="utf-8")


def test_site_has_every_generated_page(built: Path) -> None:
    for rel in ("index.html", "growth-map/index.html", "coverage/index.html", "graph/index.html",
                "evidence/index.html", "tags/index.html", "tags/attack/evasion/index.html",
                "editions/index.html", "techniques/evasion/index.html", "search/search_index.json"):
        assert (built / "site" / rel).is_file(), rel
    assert (built / "site" / MARKER).is_file()


def test_no_third_party_requests_in_the_output(built: Path) -> None:
    """Nothing that loads by itself (script, style, image, font, frame) points off the site."""
    loads = re.compile(r"""<(?:script|link|img|iframe|source|video|audio)\b[^>]*?(?:src|href)=["']?(https?:)?//""", re.IGNORECASE)
    for page in (built / "site").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not loads.search(text), page
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, page
    for css in (built / "site").rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(encoding="utf-8")), css


def test_note_page_shows_the_record(built: Path) -> None:
    page = html_of(built, "techniques/evasion/index.html")
    assert 'class="fm-measured">0.9733<' in page and 'class="fm-measured">0.1187<' in page
    assert ">97.3%<" in page  # {{evidence:clean_accuracy:.1%}}
    assert "&lt;script&gt;alert(\"log\")&lt;/script&gt;" in page  # the log, escaped (re-escaped by the sanitizer)
    assert "<script>alert" not in page
    assert 'href="https://atlas.mitre.org/techniques/AML.T0043"' in page
    assert 'id="block-mechanism"' in page and 'href="#block-mechanism"' in page
    assert 'id="how-it-works_1"' in page
    assert "private: rewrite this intro" not in page and "three lines" not in page


def test_a_claim_added_after_the_run_is_judged_on_the_recorded_metrics(tmp_path: Path) -> None:
    """The site judges the note's current claims as the manual and `check` do (issue 20)."""
    root = copy_fixture(tmp_path / "p")
    note = root / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text().replace('    fgsm.accuracy: "<= 0.3"\n', '    fgsm.accuracy: "<= 0.3"\n    fgsm.epsilon: "<= 0.2"\n'))
    report = build(root, run_mkdocs=False, fail_on_check=False)
    staged = (report.staging / "docs" / "techniques" / "evasion.md").read_text()
    row = staged.split("<code>fgsm.epsilon</code>")[1].split("</tr>")[0]
    assert "0.1" in row and ">met<" in row
    note.write_text(note.read_text().replace('fgsm.epsilon: "<= 0.2"', 'fgsm.epsilon: "<= 0.05"'))
    report = build(root, run_mkdocs=False, fail_on_check=False)
    staged = (report.staging / "docs" / "techniques" / "evasion.md").read_text()
    row = staged.split("<code>fgsm.epsilon</code>")[1].split("</tr>")[0]
    assert "not met" in row and "measured 0.1, expected &lt;= 0.05" in row


def test_evidence_artifacts_published_by_type(built: Path) -> None:
    runs = built / "site" / "runs" / "toy-evasion"
    assert (runs / "accuracy-vs-epsilon.png").is_file()
    assert (runs / "samples.json").is_file()
    assert (runs / "log.txt").is_file()
    assert not (runs / "report.html").exists()  # could run script on the site's origin
    assert "report.html" in html_of(built, "techniques/evasion/index.html")  # listed, not linked


def test_a_record_artifact_reached_through_a_link_is_not_published(tmp_path: Path) -> None:
    """A committed record is pull-request content: `artifacts/dir -> /elsewhere` must not put a
    host file on the site, even when the record lists `dir/secret.txt`."""
    root = copy_fixture(tmp_path / "p")
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "secret.txt").write_text("host data\n")
    record = root / "evidence" / "toy-evasion" / "record"
    (record / "artifacts" / "dir").symlink_to(outside, target_is_directory=True)
    (record / "artifacts" / "link.txt").symlink_to(outside / "secret.txt")
    data = json.loads((record / "record.json").read_text())
    data["artifacts"] += ["dir/secret.txt", "link.txt"]
    (record / "record.json").write_text(json.dumps(data))
    report = build(root, fail_on_check=False)
    assert report.output is not None
    published = [p for p in report.output.rglob("*") if p.is_file() and "host data" in p.read_text(errors="replace")]
    assert published == []


def test_evidence_report_lists_every_module(built: Path) -> None:
    page = html_of(built, "evidence/index.html")
    assert 'id="module-toy-evasion"' in page and "fm-sortable" in page
    assert "12.3" in page and "bubblewrap" in page and "3 / 3" in page


def test_growth_map_has_the_configured_chapters(built: Path) -> None:
    page = html_of(built, "growth-map/index.html")
    for number in (1, 4, 5):
        assert f'id="chapter-{number}"' in page
    assert "any note: the chapter is empty" in page  # chapter 1 has no note


def test_editions_published_with_banner_and_versions(built: Path) -> None:
    edition = html_of(built, "editions/2026.1/index.html")
    assert "Edition 2026.1, frozen on 2026-02-02" in edition
    assert 'href="../../"' in edition
    versions = json.loads(html_of(built, "versions.json"))
    assert versions == [
        {"version": ".", "title": "Living manual", "aliases": ["latest"]},
        {"version": "editions/2026.1", "title": "Edition 2026.1", "aliases": []},
    ]
    listing = html_of(built, "editions/index.html")
    assert "&lt;script&gt;" in listing and "<script>alert" not in listing
    changelog = listing.split('class="fm-changelog"')[1].split("</details>")[0]
    assert "<img" not in changelog and "<a " not in changelog  # nothing in a changelog loads or links


def test_zero_editions(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    shutil.rmtree(root / "editions")
    build(root, strict=True)
    assert "No Edition has been cut yet" in html_of(root, "editions/index.html")
    assert json.loads(html_of(root, "versions.json")) == [{"version": ".", "title": "Living manual", "aliases": ["latest"]}]


def test_rebuild_is_incremental_and_drops_removed_notes(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    first = build(root, run_mkdocs=False)
    staged = first.staging / "docs" / "sources" / "bibliography.md"
    assert staged.is_file()
    mtime = staged.stat().st_mtime_ns
    build(root, run_mkdocs=False)
    assert staged.stat().st_mtime_ns == mtime  # unchanged bytes are not rewritten
    (root / "vault" / "sources" / "bibliography.md").unlink()
    build(root, run_mkdocs=False)
    assert not staged.exists()


# --- the output folder -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [".", "vault", "vault/site", "..", "evidence", "editions"])
def test_build_refuses_dangerous_output_folders(tmp_path: Path, where: str) -> None:
    root = copy_fixture(tmp_path / "p")
    with pytest.raises(BuildError) as info:
        build(root, output=(root / where))
    assert info.value.exit_code == 2


def test_build_refuses_a_foreign_non_empty_folder_and_keeps_it(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(BuildError, match="not empty"):
        build(root, output=foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_build_reuses_its_own_previous_output(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    out = tmp_path / "out"
    build(root, output=out)
    (out / "stale.txt").write_text("left by an older build")
    build(root, output=out)
    assert not (out / "stale.txt").exists() and (out / MARKER).is_file()


# --- the command line ------------------------------------------------------------------------------


def run_cli(root: Path, *args: str) -> object:
    """`fmbuild build ARGS` run from the project root."""
    import os

    before = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, ["build", *args], catch_exceptions=False)
    finally:
        os.chdir(before)


def test_cli_bad_output_is_a_one_line_usage_error(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    result = run_cli(root, "--output", str(root))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "is the project root" in result.output


def test_cli_check_errors_stop_the_build(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    note = root / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text().replace("[[sources/overview]]", "[[sources/nowhere]]"))
    result = run_cli(root, "-q")
    assert result.exit_code == 1
    assert "link-broken" in result.output and "check found 1 error" in result.output
    assert not (root / "site").exists()


def test_cli_builds_and_reports_timings(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    result = run_cli(root, "--strict", "--output", "public")
    assert result.exit_code == 0, result.output
    assert re.search(r"built \d+ pages into .*public in [\d.]+ s \(check", result.output)
    assert (root / "public" / "index.html").is_file()


def test_plain_obsidian_vault_needs_output_and_is_sanitised(tmp_path: Path) -> None:
    vault = tmp_path / "notes"
    vault.mkdir()
    (vault / "a.md").write_text("# A\n\n<script>alert('x')</script> [[b#Part]]\n")
    (vault / "b.md").write_text("# B\n\n## Part\n\nSee [[Ünïcode note (draft)#Café & co]] #tag/ünï\n")
    (vault / "sub dir").mkdir()
    (vault / "sub dir" / "Ünïcode note (draft).md").write_text("# U\n\n## Café & co\n\n![[b#Part]]\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["build", "--vault", str(vault)])
    assert result.exit_code == 2 and "--output" in result.output
    result = runner.invoke(cli, ["build", "--vault", str(vault), "--output", str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "a" / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'href="../b/#part"' in page
    b_page = (tmp_path / "out" / "b" / "index.html").read_text()
    assert 'href="../sub%20dir/%C3%9Cn%C3%AFcode%20note%20%28draft%29/#cafe-co"' in b_page
    assert (tmp_path / "out" / "sub dir" / "Ünïcode note (draft)" / "index.html").is_file()


def test_fixture_is_check_clean(tmp_path: Path) -> None:
    """The fixture must stay valid, or every build test above tests a refusal."""
    from fmbuild.check import run_checks
    from fmbuild.vault.load import load_project

    config, vault = load_project(start=copy_fixture(tmp_path / "p", SITE_BASIC), use_cache=False)
    assert [d.text() for d in run_checks(vault, config)] == []


def test_titles_and_tags_are_escaped_everywhere_mkdocs_prints_them(tmp_path: Path) -> None:
    """MkDocs and Material print page titles, nav labels and the site name as HTML."""
    vault = tmp_path / "evil vault <i>"
    vault.mkdir()
    (vault / "evil.md").write_text(
        '---\ntitle: "<img src=x onerror=alert(1)> Evil"\ntags: ["<b>t</b>"]\n---\n\n## Part\n\nText.\n'
    )
    result = CliRunner().invoke(cli, ["build", "--vault", str(vault), "--output", str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 0, result.output
    for page in (tmp_path / "out").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<img src=x" not in text and "<b>t</b>" not in text and "<i>" not in text, page


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "p")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BuildError) as info:
        build(root, output=blocker / "site")  # its parent is a file: nothing can be written
    assert info.value.exit_code == 2 and "a-file" in str(info.value)


def test_someone_elses_vault_builds_with_its_findings_reported(tmp_path: Path) -> None:
    """A vault without fmbuild.toml is built as Obsidian Publish would: a broken link is reported,
    not a refusal. --strict refuses, and the Field Manual's own build stays strict."""
    vault = tmp_path / "their vault"
    vault.mkdir()
    (vault / "Home.md").write_text("# Home\n\nSee [[Missing page]] and [[Other]].\n")
    (vault / "Other.md").write_text("# Other\n\nBack to [[Home]].\n")
    result = CliRunner().invoke(cli, ["build", "--vault", str(vault), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Home.md:3:5: error[link-broken]" in result.output
    assert ("notice: built with 1 error(s) and 0 other finding(s) of check reported above: this vault has no "
            "fmbuild.toml, so they do not stop the build (--strict makes them)") in result.output
    home = (tmp_path / "out" / "Home" / "index.html").read_text(encoding="utf-8")
    assert 'href="../Other/"' in home and "Missing page" in home
    strict = CliRunner().invoke(cli, ["build", "--vault", str(vault), "--output", str(tmp_path / "out2"), "--strict"])
    assert strict.exit_code == 1 and "check found 1 error(s): fix them, then build again" in strict.output
    own = copy_fixture(tmp_path / "p")
    (own / "vault" / "broken.md").write_text("---\ntitle: Broken\n---\n\n[[Nowhere at all]]\n")
    refused = run_cli(own, "--output", "public")
    assert refused.exit_code == 1 and "check found" in refused.output


def test_a_cancelled_staging_stops_between_pages_and_removes_nothing(tmp_path: Path) -> None:
    """`serve` cancels a full re-staging when a newer edit arrives; what is staged stays."""
    from fmbuild.site.build import BuildCancelled, BuildOptions, build_site, stage_changed_notes
    from fmbuild.vault.load import load_project

    root = copy_fixture(tmp_path / "p")
    config, vault = load_project(start=root)
    staging = tmp_path / "staging"
    build_site(config, vault, BuildOptions(run_mkdocs=False, fail_on_check=False, staging=staging))
    before = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    asked = []

    def cancel_on_third_ask() -> bool:
        asked.append(1)
        return len(asked) >= 3  # after the check and the graph: inside the pages

    with pytest.raises(BuildCancelled):
        build_site(config, vault, BuildOptions(run_mkdocs=False, fail_on_check=False, staging=staging,
                                               cancelled=cancel_on_third_ask))
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()) == before
    note = root / "vault" / "techniques" / "evasion.md"
    note.write_text(note.read_text() + "\nA line only the fast step has staged.\n")
    config, vault = load_project(start=root)
    assert stage_changed_notes(config, vault, ["techniques/evasion.md", "not/a-note.md"], staging) == ["techniques/evasion.md"]
    assert "only the fast step has staged" in (staging / "docs" / "techniques" / "evasion.md").read_text()
