"""`fmbuild graph --format navigator`: the ATLAS coverage as a Navigator layer, held to the layer format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from fmbuild.cli import cli

REPO = Path(__file__).resolve().parent.parent
NAVIGATOR = REPO.parent / "shared" / "frameworks" / "navigator"

# Written from the layer format 4.5 definition (layerformat-v4.5.md): the required fields and the
# types of every field this export writes.
_META = {"type": "object", "required": ["name", "value"],
         "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}
_DIVIDER = {"type": "object", "required": ["divider"], "properties": {"divider": {"type": "boolean"}}}
_LINK = {"type": "object", "required": ["label", "url"],
         "properties": {"label": {"type": "string"}, "url": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*://"}}}
LAYER_SCHEMA = {
    "type": "object",
    "required": ["name", "domain"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "domain": {"type": "string"},
        "versions": {"type": "object", "properties": {k: {"type": "string"} for k in ("layer", "navigator", "attack")}},
        "hideDisabled": {"type": "boolean"},
        "sorting": {"type": "number"},
        "metadata": {"type": "array", "items": {"anyOf": [_META, _DIVIDER]}},
        "links": {"type": "array", "items": {"anyOf": [_LINK, _DIVIDER]}},
        "gradient": {"type": "object", "required": ["colors", "minValue", "maxValue"],
                     "properties": {"colors": {"type": "array", "minItems": 2, "items": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}},
                                    "minValue": {"type": "number"}, "maxValue": {"type": "number"}}},
        "legendItems": {"type": "array", "items": {"type": "object", "required": ["label", "color"],
                                                   "properties": {"label": {"type": "string"}, "color": {"type": "string"}}}},
        "techniques": {"type": "array", "items": {
            "type": "object", "required": ["techniqueID"],
            "properties": {
                "techniqueID": {"type": "string", "pattern": r"^AML\.T\d{4}(\.\d{3})?$"},
                "tactic": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
                "comment": {"type": "string"}, "enabled": {"type": "boolean"}, "score": {"type": "number"},
                "color": {"type": "string"}, "showSubtechniques": {"type": "boolean"},
                "metadata": {"type": "array", "items": {"anyOf": [_META, _DIVIDER]}},
                "links": {"type": "array", "items": {"anyOf": [_LINK, _DIVIDER]}},
            },
        }},
    },
}


def test_the_schema_accepts_the_layers_mitre_publishes() -> None:
    """The schema is no stricter than the format: ATLAS's own sample layers pass it."""
    if not NAVIGATOR.is_dir():
        pytest.skip("shared/frameworks/navigator is not in this checkout")
    for name in ("atlas-sample-layer-matrix.json", "atlas-sample-layer-case-study.json"):
        jsonschema.validate(json.loads((NAVIGATOR / name).read_text(encoding="utf-8")), LAYER_SCHEMA)


def _export(project: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["graph", "--no-cache", "--format", "navigator", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bundled_manual_layer_holds_to_the_format_and_scores_verified_coverage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    data = _export(REPO)
    jsonschema.validate(data, LAYER_SCHEMA)
    assert data["domain"] == "atlas-atlas" and data["versions"]["layer"] == "4.5"
    assert {"name": "atlas_data_version", "value": "5.6.0"} in data["metadata"]
    by_id: dict[str, list[dict]] = {}
    for t in data["techniques"]:
        by_id.setdefault(t["techniqueID"], []).append(t)
    # Evasion (AML.T0015) appears once under each tactic ATLAS places it in.
    from fmbuild import frameworks

    evade = frameworks.lookup("AML.T0015")
    assert evade is not None and "AML.T0015" in by_id
    tactics = {frameworks.lookup(t).name.lower().replace(" ", "-") for t in evade.tactics}
    assert {t["tactic"] for t in by_id["AML.T0015"]} == tactics
    # Every score is earned: 2 only where a note mapping to it has a verified control behind it.
    assert {t["score"] for t in data["techniques"]} <= {1, 2}
    for entries in by_id.values():
        entry = entries[0]
        assert entry["comment"].startswith("Field Manual: ")
        assert (entry["score"] == 2) == ("Verified controls:" in entry["comment"])
        assert all(m["value"].startswith("techniques/") for m in entry["metadata"])


def test_links_need_a_site_url_and_use_the_page_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / "tests" / "vaults" / "graph-basic", root)
    monkeypatch.chdir(root)
    without = _export(root)
    assert all("links" not in t for t in without["techniques"])
    toml = root / "fmbuild.toml"
    text = toml.read_text(encoding="utf-8") if toml.exists() else ""
    toml.write_text(text + '\n[site]\nurl = "https://manual.example.org/"\n' if "[site]" not in text else text.replace(
        "[site]", '[site]\nurl = "https://manual.example.org/"', 1), encoding="utf-8")
    with_links = _export(root)
    links = [link for t in with_links["techniques"] for link in t.get("links", [])]
    assert with_links["techniques"], "graph-basic maps techniques to ATLAS IDs"
    assert links and all(link["url"].startswith("https://manual.example.org/techniques/") and link["url"].endswith("/")
                         for link in links)


def test_navigator_refuses_a_partial_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["graph", "--format", "navigator", "--edge-type", "mitigates"])
    assert result.exit_code == 2
    assert "--format navigator exports the whole coverage; drop --edge-type and --focus" in result.output
