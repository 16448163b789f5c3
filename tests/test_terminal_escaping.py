"""Terminal control sequences from notes and runs are shown, never obeyed; JSON stays exact."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from fmbuild.diagnostics import Diagnostic, Severity, render
from fmbuild.evidence.report import print_text
from fmbuild.evidence.runner import Result
from fmbuild.terminal import printable

HOSTILE = {
    "reset": "\x1bc",
    "clear": "\x1b[2J\x1b[H",
    "cursor": "\x1b[1A\x1b[2K",
    "osc8": "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "bell": "\x07",
    "c1-csi": "\x9b2J",
    "bidi": "\u202eexe.txt",
    "isolate": "\u2066x\u2069",
    "backspace": "ok\x08\x08no",
}


def raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f
            or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_printable_escapes_each_control(name: str) -> None:
    shown = printable(f"before {HOSTILE[name]} after")
    assert raw_controls(shown) == []
    assert shown.startswith("before ") and shown.endswith(" after")


def test_printable_keeps_ordinary_text_and_layout() -> None:
    text = "naïve café — 日本語 ✓\n\tindented"
    assert printable(text) == text
    assert printable("\x1bc") == "\\x1bc" and printable("\u202e") == "\\u202e" and printable("\x9b") == "\\u009b"


def test_escaped_json_is_still_the_same_json() -> None:
    data = {"m": "a\u202eb\x85c\x1b"}
    dumped = json.dumps(data, ensure_ascii=False)  # json leaves C1 and bidi characters raw
    assert json.loads(printable(dumped)) == data


def test_diagnostic_text_and_github_output_escape_note_text() -> None:
    d = Diagnostic("n\x1bc.md", 3, 1, Severity.ERROR, "link-broken", f"[[{HOSTILE['osc8']}]] {HOSTILE['bidi']}")
    for fmt in ("text", "github"):
        assert raw_controls(render([d], fmt)) == [], fmt
    assert json.loads(render([d], "json"))[0]["message"] == d.message  # JSON keeps the exact text


def test_verify_report_escapes_a_module_log(tmp_path: Path) -> None:
    log = "\n".join(f"line {v}" for v in HOSTILE.values())
    results = [Result(module="m", status="error", reason=f"crashed {HOSTILE['clear']}", log_tail=log),
               Result(module="n\x1b[31m", status="passed")]
    out = io.StringIO()
    print_text(Console(file=out, force_terminal=False, width=200), results, "bubblewrap")
    text = out.getvalue()
    assert raw_controls(text) == []
    assert "\\x1b]8;;https://evil.example/" in text  # shown as written


def test_check_text_output_escapes_link_text_from_a_note(fmbuild, write_files) -> None:
    vault = write_files({"a.md": f"# A\n\n[[missing|{HOSTILE['osc8']} {HOSTILE['reset']}]] [[gone\u202egpj.exe]]\n"})
    result = fmbuild("check", "--vault", str(vault), "--no-cache")
    assert result.exit_code == 1
    assert raw_controls(result.stdout) == [] and raw_controls(result.stderr) == []
    assert "\\u202e" in result.stdout
    as_json = fmbuild("check", "--vault", str(vault), "--no-cache", "--format", "json")
    assert any("\u202e" in d["message"] for d in json.loads(as_json.stdout))
