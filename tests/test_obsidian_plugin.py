"""The Obsidian plugin (`vault/.obsidian/plugins/fmbuild-evidence/`) shows what the site shows.

Its logic runs under Node's own test runner (`tests/obsidian/plugin.test.js`); here, the value
formatting is held to fmbuild's own `format_value` on generated values and on every reference the
bundled vault makes. What needs the Obsidian app itself (the post-processor walking the reading
view's DOM, the desktop file-system adapter) is not tested here; the README says so.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from fmbuild.config import load_config
from fmbuild.site.evidence_view import EvidenceBook, format_value
from fmbuild.vault.load import load_vault

REPO = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (apt-get install nodejs)")


def node_format(cases: list[tuple[object, str | None]]) -> list[str]:
    done = subprocess.run([NODE, str(REPO / "tests" / "obsidian" / "format_cases.js")], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_plugin_logic_passes_nodes_test_runner() -> None:
    done = subprocess.run([NODE, "--test", str(REPO / "tests" / "obsidian")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 5" in done.stdout


def test_formatting_matches_fmbuild_on_generated_values() -> None:
    values = [0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.0129, 0.98765, 12.3456, 1234567.891, 0.000123456, 7.5e-9, 42, 540,
              -0.25, -1234.5, 3.14159e12, 0.333333, 0.1 + 0.2, 0.625, 0.125, 2.5, 0.005, 1e-5, 9.9995, 0.99995, True, False]
    rng = random.Random(7)
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-6, 8) for _ in range(150)]
    values += [rng.randint(0, 2000) / 8 for _ in range(50)]  # exact binary values: every tie is a real tie
    specs = [None, ".0%", ".1%", ".2%", "+.1%", ".3f", ".1f", ".0f", ".2e", ".3g", ".4g", "g", ",.0f", ",.2f", "d", ".2", ".4"]
    # JSON.parse cannot tell 42 from 42.0, which Python formats differently in two cases: a bare
    # precision ('.2': an error for an int, so shown unformatted) and a whole float of 10,000 or more
    # (compact '.4g' for a float, every digit for an int). The plugin shows such a value as an int.
    def ambiguous(v: object, s: str | None) -> bool:
        whole = isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()
        return whole and (s in (".2", ".4") or (abs(v) >= 1e4 and s in (None, "d")))

    cases = [(v, s) for v in values for s in specs if not ambiguous(v, s)]
    expected = [format_value(v, s) for v, s in cases]
    got = node_format(cases)
    wrong = [(v, s, e, g) for (v, s), e, g in zip(cases, expected, got) if e != g]
    assert not wrong, wrong[:10]


def test_every_reference_in_the_manual_reads_as_on_the_site() -> None:
    config = load_config(REPO / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    book = EvidenceBook(config.evidence_root, config.evidence.path)
    cases, expected = [], []
    for note in vault.notes.values():
        own = book.for_note(note)
        for ref in note.metric_refs:
            module = book.named(ref.module) if ref.module else own
            if module is None:
                continue
            found, value = module.metric(ref.metric)
            if not found or (isinstance(value, float) and not math.isfinite(value)):
                continue
            cases.append((value, ref.fmt))
            expected.append(format_value(value, ref.fmt))
    assert len(cases) > 300  # the manual cites hundreds of measured values
    got = node_format(cases)
    wrong = [(c, e, g) for c, e, g in zip(cases, expected, got) if e != g]
    assert not wrong, wrong[:10]
