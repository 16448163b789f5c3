"""Link paths checked in the parse workers (`LinkPrecheck`) give exactly the findings of
the link rule checking everything itself: serially on a small vault, in forked workers on a
vault large enough for parallel parsing, with notes that cannot be parsed and links into
other notes' headings and blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmbuild.check import run_checks
from fmbuild.check.links import LinkPrecheck
from fmbuild.vault import load as loading
from fmbuild.vault.load import PARALLEL_THRESHOLD, load_vault

# Each kind of link finding, and links that must not be findings.
HUB = """# Hub

## Step 1: Do X
Text ^anchor

[[#Step 1 Do X]] and [[#No such heading]] and [[#^anchor]] and [[#^nope]]
"""

SPOKE = """---
see: "[[hub#Gone]]"
---
# Spoke {n}

[[hub#Step 1 Do X]] [[hub#Step 1#Nested]] [[hub#^anchor]] [[hub#^missing]]
[[hub]] [[folder/dup]] [[dup]] [[../../outside]] [[hubb]] [[latin1#Any]]
![[figure.png]] ![[figur.png]] [text](hub.md#step-1-do-x) [t](hub.md#Step%201%20Do%20X)
[[spoke-{next}#Spoke {next}]] [[spoke-{next}#Spoke {n}]]
"""


def _write(root: Path, count: int) -> Path:
    vault = root / "vault"
    (vault / "folder").mkdir(parents=True)
    (vault / "other").mkdir()
    (vault / "hub.md").write_text(HUB, encoding="utf-8")
    (vault / "folder" / "dup.md").write_text("# A\n", encoding="utf-8")
    (vault / "other" / "dup.md").write_text("# B\n", encoding="utf-8")
    (vault / "figure.png").write_bytes(b"\x89PNG\r\n")
    (vault / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))  # cannot be parsed
    for n in range(count):
        (vault / f"spoke-{n}.md").write_text(SPOKE.format(n=n, next=(n + 1) % count), encoding="utf-8")
    return vault


def _findings(vault: Path, *, analyse: bool) -> list:
    loaded = load_vault(vault, None, use_cache=False, analyse=LinkPrecheck() if analyse else None)
    assert bool(loaded.analysis) is analyse
    return run_checks(loaded, None)


@pytest.mark.parametrize("count", [3, PARALLEL_THRESHOLD + 20], ids=["serial", "parallel"])
def test_prechecked_links_give_the_same_findings(tmp_path: Path, count: int) -> None:
    vault = _write(tmp_path, count)
    prechecked = _findings(vault, analyse=True)
    assert prechecked == _findings(vault, analyse=False)
    spoke = [(d.line, d.column, d.code, d.message) for d in prechecked if d.path == "spoke-1.md"]
    assert spoke == [
        (2, 7, "heading-missing",
         "[[hub#Gone]] (in property 'see'): 'hub.md' has no heading 'Gone'; its headings: Hub, Step 1: Do X"),
        (6, 21, "heading-missing",
         "[[hub#Step 1#Nested]]: 'hub.md' has no heading 'Step 1#Nested'; its headings: Hub, Step 1: Do X"),
        (6, 59, "block-missing",
         "[[hub#^missing]]: 'hub.md' has no block '^missing'; mark the paragraph with ' ^missing' at its end"),
        (7, 24, "link-ambiguous",
         "[[dup]]: 'dup' matches 2 files (folder/dup.md, other/dup.md); write the path, e.g. [[folder/dup]]"),
        (7, 32, "path-escape", "[[../../outside]] points outside the vault: link to a note inside it"),
        (7, 50, "link-broken", "[[hubb]]: no note or file named 'hubb' in the vault; did you mean [[hub]]?"),
        (8, 17, "embed-missing",
         "![[figur.png]]: no embedded file named 'figur.png' in the vault; did you mean ![[figure.png]]?"),
        (8, 32, "heading-missing",  # Obsidian matches heading text, not a web slug
         "[text](hub.md#step-1-do-x): 'hub.md' has no heading 'step-1-do-x'; its headings: Hub, Step 1: Do X"),
        (9, 21, "heading-missing",
         "[[spoke-2#Spoke 1]]: 'spoke-2.md' has no heading 'Spoke 1'; did you mean '#Spoke 2'?"),
    ]
    hub = [(d.line, d.column, d.code) for d in prechecked if d.path == "hub.md"]
    assert hub == [(6, 22, "heading-missing"), (6, 64, "block-missing")]


def test_parallel_parsing_runs_the_precheck_in_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent never resolves a prechecked note's link paths itself."""
    vault = _write(tmp_path, PARALLEL_THRESHOLD + 20)
    parent = os.getpid()
    log = tmp_path / "pids"  # written by whichever process runs the analyser (workers are forked)
    original = loading._analysed

    def spy(outcomes, analyser):
        with log.open("a", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        return original(outcomes, analyser)

    monkeypatch.setattr(loading, "_analysed", spy)
    loaded = load_vault(vault, None, use_cache=False, analyse=LinkPrecheck())
    assert len(loaded.analysis) == len(loaded.notes)  # every parsed note, none that failed
    assert "latin1.md" not in loaded.analysis and "latin1.md" in loaded.unparsed
    calls = {int(pid) for pid in log.read_text(encoding="ascii").split()}
    if loading.worker_count(len(loaded.notes) + 1, PARALLEL_THRESHOLD) > 1:
        assert calls and parent not in calls


def test_cached_notes_have_no_analysis(tmp_path: Path) -> None:
    vault = _write(tmp_path, 3)
    first = load_vault(vault, None, analyse=LinkPrecheck())
    again = load_vault(vault, None, analyse=LinkPrecheck())
    assert first.analysis and not again.analysis
    assert run_checks(again, None) == run_checks(load_vault(vault, None, use_cache=False), None)
