"""The evidence contract: a note's evidence block and a module folder's module.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmbuild.evidence.contract import module_files, read_evidence_block, read_module


def module(tmp_path: Path, toml: str = "", entry: str = "run.py") -> Path:
    folder = tmp_path / "evidence" / "m"
    folder.mkdir(parents=True)
    if entry:
        (folder / entry).write_text("print('hi')\n")
    if toml:
        (folder / "module.toml").write_text(toml)
    return folder


def test_full_module_toml(tmp_path: Path) -> None:
    spec = read_module(module(tmp_path, """
title = "A module"
device = "gpu"
timeout = 120
requires = ["torch", "sklearn.datasets"]
inputs = ["data/shared.csv", "data/*.json"]
[env]
FMBUILD_GGUF_MODEL = "a GGUF chat model file"
[optional_env]
FMBUILD_EXTRA = "an optional file"
[params]
epochs = 3
"""))
    assert spec.runnable and spec.entry == "run.py" and spec.title == "A module"
    assert spec.device == "gpu" and spec.timeout == 120
    assert spec.requires == ("torch", "sklearn.datasets")
    assert spec.env == {"FMBUILD_GGUF_MODEL": "a GGUF chat model file"}
    assert spec.optional_env == {"FMBUILD_EXTRA": "an optional file"}
    assert spec.params == {"epochs": 3}


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("device = 'tpu'", "device 'tpu'"),
        ("timeout = 0", "timeout"),
        ("timeout = true", "timeout"),
        ("requires = 'torch'", "requires must be a list"),
        ("requires = ['torch>=2']", "not an import name"),
        ("inputs = ['/etc/passwd']", "inside the project"),
        ("inputs = ['../outside.csv']", "inside the project"),
        ("[env]\nlower = 'x'", "UPPER_CASE"),
        ("env = ['X']", "[env] must be a table"),
        ("params = 3", "[params] must be a table"),
        ("cpus = 0", "cpus must be a positive whole number of CPUs"),
        ("cpus = true", "cpus must be a positive whole number of CPUs"),
        ("surprise = 1", "unknown key 'surprise'"),
        ("title = [", "module.toml"),
    ],
)
def test_module_toml_problems(tmp_path: Path, toml: str, fragment: str) -> None:
    spec = read_module(module(tmp_path, toml))
    assert not spec.runnable
    assert any(fragment in e for e in spec.errors), spec.errors


def test_entry_points(tmp_path: Path) -> None:
    assert read_module(module(tmp_path / "a", entry="notebook.ipynb")).entry == "notebook.ipynb"
    none = read_module(module(tmp_path / "c", entry=""))
    assert none.entry is None and "neither run.py nor notebook.ipynb" in none.errors[0]
    both = module(tmp_path / "d")
    (both / "notebook.ipynb").write_text("{}")
    assert "keep one" in read_module(both).errors[0]
    assert "does not exist" in read_module(tmp_path / "nowhere").errors[0]


def test_module_files_skip_outputs(tmp_path: Path) -> None:
    folder = module(tmp_path)
    for sub in ("record", "out", "__pycache__", ".ipynb_checkpoints"):
        (folder / sub).mkdir()
        (folder / sub / "x").write_text("x")
    (folder / "data").mkdir()
    (folder / "data" / "rows.csv").write_text("a\n")
    names = [p.relative_to(folder).as_posix() for p in module_files(folder)]
    assert names == ["data/rows.csv", "run.py"]


def test_evidence_block() -> None:
    block = read_evidence_block({"module": "evidence/evasion-fgsm", "device": "any", "timeout": 600,
                                 "claims": {"clean_accuracy": ">= 0.95", "fgsm_accuracy": "<= 0.30"}})
    assert block is not None and not block.errors and not block.claim_errors
    assert block.name == "evasion-fgsm" and block.device == "any" and block.timeout == 600
    assert [c.metric for c in block.claims] == ["clean_accuracy", "fgsm_accuracy"]
    assert read_evidence_block("evidence/x") is None
    assert read_evidence_block(None) is None


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({}, "evidence.module: missing"),
        ({"module": "evasion"}, "must be 'evidence/<name>'"),
        ({"module": "evidence/a/b"}, "must be 'evidence/<name>'"),
        ({"module": "evidence/../x"}, "must be 'evidence/<name>'"),
        ({"module": "evidence/x", "device": "tpu"}, "not one of cpu, gpu, any"),
        ({"module": "evidence/x", "timeout": "10m"}, "positive whole number"),
        ({"module": "evidence/x", "timeout": -1}, "positive whole number"),
        ({"module": "evidence/x", "claimz": {}}, "evidence.claimz: unknown field"),
    ],
)
def test_evidence_block_problems(block: dict, fragment: str) -> None:
    parsed = read_evidence_block(block)
    assert parsed is not None
    assert any(fragment in e for e in parsed.errors), parsed.errors


def test_configured_evidence_folder() -> None:
    block = read_evidence_block({"module": "lab/x"}, evidence_path="lab")
    assert block is not None and block.name == "x" and not block.errors
