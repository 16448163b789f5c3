"""Unit tests for evidence/install-time-attacks/pkgindex.py (the index builder and typo generator)."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ita_pkgindex", ROOT / "evidence/install-time-attacks/pkgindex.py")
pkgindex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pkgindex)


def test_normalize_follows_pep_503():
    assert pkgindex.normalize("Scikit_Learn") == "scikit-learn"
    assert pkgindex.normalize("scikit.-_learn") == "scikit-learn"


def test_normalize_rejects_bad_name():
    with pytest.raises(ValueError, match=r"^not a valid distribution name: 'bad name'$"):
        pkgindex.normalize("bad name")


def test_typos_are_one_edit_and_never_the_same_project():
    typos = pkgindex.one_edit_typos("requests")
    assert "reqests" in typos and typos["reqests"] == "omission"
    assert "rqeuests" in typos and typos["rqeuests"] == "transposition"
    assert all(pkgindex.normalize(t) != "requests" for t in typos)
    assert "Requests" not in typos  # case is not a typo for pip


def test_separator_variants_normalize_to_the_name():
    variants = pkgindex.separator_variants("scikit-learn")
    assert variants and all(pkgindex.normalize(v) == "scikit-learn" for v in variants)


def test_sdist_is_deterministic_and_carries_the_canary(tmp_path):
    marker = tmp_path / "canary.jsonl"
    a = pkgindex.build_sdist(tmp_path / "a", "lab-tokenizer", "1.0.1", marker, "attacker")
    b = pkgindex.build_sdist(tmp_path / "b", "lab-tokenizer", "1.0.1", marker, "attacker")
    assert a.name == "lab_tokenizer-1.0.1.tar.gz" and a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tf:
        setup_py = tf.extractfile("lab_tokenizer-1.0.1/setup.py").read().decode()
    assert str(marker) in setup_py and "setup(name='lab-tokenizer'" in setup_py


def test_simple_index_lists_files_with_hashes(tmp_path):
    pkgindex.build_sdist(tmp_path / "files", "Lab_Tokenizer", "1.0.1", tmp_path / "m", "x")
    assert pkgindex.write_simple_index(tmp_path) == ["lab-tokenizer"]
    page = (tmp_path / "simple/lab-tokenizer/index.html").read_text()
    digest = pkgindex.sha256(tmp_path / "files/lab_tokenizer-1.0.1.tar.gz")
    assert f"#sha256={digest}" in page


def test_canary_lines(tmp_path):
    marker = tmp_path / "m.jsonl"
    assert pkgindex.canary_lines(marker) == []
    marker.write_text(json.dumps({"argv": ["egg_info"]}) + "\n\n")
    assert pkgindex.canary_lines(marker) == [{"argv": ["egg_info"]}]
