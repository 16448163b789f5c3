"""A module's inputs hash is memoised within a process by its files' identities, never for
files so fresh that a rewrite could keep their identity."""

from __future__ import annotations

import os
from pathlib import Path

from fmbuild.evidence import records
from fmbuild.evidence.fingerprint import inputs_hash


def _module(tmp_path: Path) -> Path:
    (tmp_path / "fmbuild.toml").write_text("", encoding="utf-8")
    module = tmp_path / "evidence" / "m"
    module.mkdir(parents=True)
    (module / "run.py").write_text("print('a')\n", encoding="utf-8")
    (module / "module.toml").write_text('inputs = ["data/x.csv"]\n', encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1\n", encoding="utf-8")
    return module


def _age(*paths: Path, seconds: int = 60) -> None:
    for path in paths:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_the_hash_is_memoised_and_follows_every_input(tmp_path: Path, monkeypatch) -> None:
    module = _module(tmp_path)
    data = tmp_path / "data" / "x.csv"
    _age(module / "run.py", module / "module.toml", data)
    first = records.current_inputs_hash(module)
    assert first == inputs_hash(module)

    calls: list[Path] = []
    real = records.inputs_hash
    monkeypatch.setattr(records, "inputs_hash", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    assert records.current_inputs_hash(module) == first and calls == []  # memoised

    data.write_text("2\n", encoding="utf-8")  # a declared input outside the module changes
    _age(data, seconds=30)
    second = records.current_inputs_hash(module)
    assert second != first and second == inputs_hash(module) and len(calls) == 1


def test_fresh_files_are_hashed_every_time(tmp_path: Path, monkeypatch) -> None:
    module = _module(tmp_path)  # just written: too fresh to trust their identity
    calls: list[Path] = []
    real = records.inputs_hash
    monkeypatch.setattr(records, "inputs_hash", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    records.current_inputs_hash(module)
    (module / "run.py").write_text("print('b')\n", encoding="utf-8")  # same size, same tick maybe
    assert records.current_inputs_hash(module) == inputs_hash(module)
    assert len(calls) == 2
