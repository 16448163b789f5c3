"""The shipped framework reference lists and fmbuild.frameworks look-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fmbuild import frameworks
from fmbuild.frameworks import build_atlas

DATA = Path(frameworks.__file__).parent / "data"


def test_versions_name_the_release_each_list_was_read_from() -> None:
    assert frameworks.versions() == {"atlas": "5.6.0", "owasp-llm": "2025", "owasp-llm-2026": "2026", "owasp-ml": "2023"}
    for fw in frameworks.frameworks().values():
        assert fw.source.strip()


def test_lookup_atlas_technique_subtechnique_mitigation_tactic() -> None:
    tech = frameworks.lookup("AML.T0043")
    assert tech is not None
    assert (tech.name, tech.kind, tech.framework, tech.parent) == ("Craft Adversarial Data", "technique", "atlas", None)
    assert tech.tactics == ("AML.TA0001",)
    assert tech.url == "https://atlas.mitre.org/techniques/AML.T0043"

    sub = frameworks.lookup("AML.T0043.003")
    assert sub is not None and sub.parent == "AML.T0043" and sub.name == "Manual Modification"
    assert sub.tactics == tech.tactics  # inherited from the parent

    mitigation = frameworks.lookup("AML.M0014")
    assert mitigation is not None and mitigation.kind == "mitigation" and mitigation.name == "Verify AI Artifacts"
    assert mitigation.url == "https://atlas.mitre.org/mitigations/AML.M0014"

    tactic = frameworks.lookup("AML.TA0001")
    assert tactic is not None and tactic.kind == "tactic" and tactic.name == "AI Attack Staging"


def test_lookup_owasp_lists_with_and_without_year() -> None:
    llm01 = frameworks.lookup("LLM01")
    assert llm01 is not None and llm01.name == "Prompt Injection" and llm01.kind == "risk"
    assert llm01.url.startswith("https://genai.owasp.org/llmrisk/")
    assert frameworks.lookup("LLM01:2025") == llm01
    assert frameworks.lookup(" llm10 ").name == "Unbounded Consumption"  # type: ignore[union-attr]
    assert frameworks.lookup("LLM01:2023") is None  # another edition of the list: not shipped
    ml01 = frameworks.lookup("ML01:2023")
    assert ml01 is not None and ml01.name == "Input Manipulation Attack"
    assert frameworks.lookup("ML10").name == "Model Poisoning"  # type: ignore[union-attr]
    assert ml01.url == (
        "https://owasp.org/www-project-machine-learning-security-top-10/docs/ML01_2023-Input_Manipulation_Attack"
    )


@pytest.mark.parametrize(
    ("raw", "framework"),
    [
        ("AML.T0043", "atlas"),
        ("AML.T9999.123", "atlas"),  # shape only: need not exist
        ("AML.M0099", "atlas"),
        ("AML.TA0001", "atlas"),
        ("LLM11", "owasp-llm"),
        ("LLM01:2025", "owasp-llm"),
        ("ML05", "owasp-ml"),
        ("T1059", None),
        ("AML.T43", None),
        ("", None),
        ("LLM1", None),
    ],
)
def test_framework_of_by_shape(raw: str, framework: str | None) -> None:
    assert frameworks.framework_of(raw) == framework


@pytest.mark.parametrize("raw", ["AML.T9999", "AML.T0043.999", "LLM11", "ML11", "AML.X", "nonsense", ""])
def test_unknown_ids_are_none(raw: str) -> None:
    assert frameworks.lookup(raw) is None


def test_suggest_names_close_ids_for_did_you_mean() -> None:
    ids = [e.id for e in frameworks.suggest("AML.T0433")]
    assert "AML.T0043" in ids
    assert frameworks.suggest("zzz") == []


def test_atlas_list_is_complete_and_consistent() -> None:
    atlas = frameworks.frameworks()["atlas"].entries
    kinds = {k: [e for e in atlas.values() if e.kind == k] for k in ("tactic", "technique", "mitigation")}
    assert len(kinds["tactic"]) == 16
    assert len(kinds["technique"]) == 170
    assert len([e for e in kinds["technique"] if e.parent]) == 69
    assert len(kinds["mitigation"]) == 35
    tactic_ids = {e.id for e in kinds["tactic"]}
    for entry in kinds["technique"]:
        assert entry.tactics, entry.id
        assert set(entry.tactics) <= tactic_ids, entry.id
        if entry.parent:
            assert entry.id.startswith(entry.parent + "."), entry.id
            assert atlas[entry.parent].kind == "technique"


def test_owasp_lists_have_ten_entries_each_in_order() -> None:
    for key, prefix in (("owasp-llm", "LLM"), ("owasp-ml", "ML")):
        ids = [e.id for e in frameworks.entries(key)]
        assert ids == [f"{prefix}{i:02d}" for i in range(1, 11)]


def test_entries_filters_by_framework_and_kind() -> None:
    mitigations = list(frameworks.entries("atlas", "mitigation"))
    assert mitigations[0].id == "AML.M0000"
    assert all(e.kind == "mitigation" for e in mitigations)


def test_atlas_json_is_reproduced_by_the_build_script(tmp_path: Path) -> None:
    out = tmp_path / "atlas.json"
    shipped = json.loads((DATA / "atlas.json").read_text(encoding="utf-8"))
    code = build_atlas.main(
        [str(DATA / "sources" / "ATLAS-5.6.0.extract.yaml"), "--source", shipped["source"], "--output", str(out)]
    )
    assert code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == shipped


def test_build_script_rejects_a_file_that_is_not_atlas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ATLAS.yaml"
    bad.write_text(yaml.safe_dump({"id": "ATLAS", "version": "9"}), encoding="utf-8")
    assert build_atlas.main([str(bad), "--output", str(tmp_path / "out.json")]) == 2
    assert "matrices" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_build_script_reads_a_full_atlas_yaml_shape() -> None:
    data = {
        "id": "ATLAS",
        "version": "9.9.9",
        "matrices": [
            {
                "id": "ATLAS",
                "tactics": [{"id": "AML.TA0001", "name": "Staging", "description": "long text"}],
                "techniques": [
                    {"id": "AML.T0001", "name": "One", "tactics": ["AML.TA0001"], "object-type": "technique"},
                    {"id": "AML.T0001.000", "name": "One  Sub", "subtechnique-of": "AML.T0001"},
                ],
                "mitigations": [{"id": "AML.M0001", "name": "Fix", "techniques": [{"id": "AML.T0001", "use": "x"}]}],
            }
        ],
        "case-studies": [{"id": "AML.CS0000", "name": "ignored"}],
    }
    doc = build_atlas.convert(data, "test")
    assert doc["version"] == "9.9.9"
    assert [e["id"] for e in doc["entries"]] == ["AML.TA0001", "AML.T0001", "AML.T0001.000", "AML.M0001"]
    assert doc["entries"][2]["name"] == "One Sub"
    assert doc["entries"][2]["url"] == "https://atlas.mitre.org/techniques/AML.T0001.000"
    with pytest.raises(build_atlas.AtlasFormatError):
        build_atlas.convert({**data, "matrices": [{**data["matrices"][0], "techniques": [{"id": "AML.T2", "name": "x", "subtechnique-of": "AML.T9"}]}]}, "t")


def test_the_2026_owasp_llm_edition_ships_beside_2025_with_its_own_ids() -> None:
    llm_2026 = list(frameworks.entries(frameworks.OWASP_LLM_2026))
    assert [e.id for e in llm_2026] == [f"LLM{i:02d}:2026" for i in range(1, 11)]
    # Renumbered: the same risk under two IDs, one per edition, and never the same ID twice.
    assert frameworks.lookup("LLM06").name == frameworks.lookup("LLM03:2026").name == "Excessive Agency"
    assert frameworks.lookup("LLM06:2025") == frameworks.lookup("LLM06")
    assert frameworks.lookup("LLM08:2026").name == "Hidden Context Exposure"
    assert frameworks.lookup("LLM07").name == "System Prompt Leakage"
    assert frameworks.framework_of("LLM03:2026") == "owasp-llm-2026"
    assert frameworks.lookup("LLM11:2026") is None
    assert [e.id for e in frameworks.suggest("LLM11:2026")][:1] == ["LLM10:2026"]
    assert {e.id for e in llm_2026}.isdisjoint(e.id for e in frameworks.entries(frameworks.OWASP_LLM))
