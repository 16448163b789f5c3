"""`fmbuild verify --shard K/N`: every module in exactly one shard, balanced by the records' durations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from fmbuild.cli import cli
from fmbuild.evidence import shards

REPO = Path(__file__).resolve().parent.parent


@dataclass
class _Spec:
    path: Path


@dataclass
class _Job:
    name: str
    spec: _Spec


def _jobs(tmp_path: Path, durations: dict[str, float | None]) -> list[_Job]:
    jobs = []
    for name, seconds in durations.items():
        folder = tmp_path / name
        (folder / "record").mkdir(parents=True)
        if seconds is not None:
            (folder / "record" / "record.json").write_text(json.dumps({"duration_s": seconds}), encoding="utf-8")
        jobs.append(_Job(name, _Spec(folder)))
    return jobs


def test_parse_shard_accepts_k_of_n_and_names_each_mistake() -> None:
    assert shards.parse_shard("2/4") == (2, 4)
    assert shards.parse_shard(" 1 / 1 ") == (1, 1)
    for bad, message in (("2", "expected K/N, e.g. 1/4"), ("0/3", "K must be between 1 and N"),
                         ("4/3", "K must be between 1 and N"), ("a/b", "expected K/N")):
        with pytest.raises(ValueError, match=message):
            shards.parse_shard(bad)


def test_shards_cover_every_module_once_and_balance_by_duration(tmp_path: Path) -> None:
    durations = {"a": 300.0, "b": 200.0, "c": 100.0, "d": 100.0, "e": 90.0, "f": 10.0, "g": None}
    jobs = _jobs(tmp_path, durations)
    parts = [shards.shard(jobs, k, 3) for k in (1, 2, 3)]
    names = [job.name for part, _ in parts for job in part]
    assert sorted(names) == sorted(durations)  # each exactly once
    # The module without a record counts as the median of the recorded ones (100 s).
    assert sum(seconds for _, seconds in parts) == pytest.approx(sum(v for v in durations.values() if v) + 100.0)
    loads = [seconds for _, seconds in parts]
    assert max(loads) - min(loads) <= 300.0  # never worse than the longest module
    assert [job.name for job in parts[0][0]] == ["a"]  # the 300 s module alone: LPT fills the others first
    # Deterministic, and each shard keeps the selection's order.
    again = [[job.name for job in shards.shard(jobs, k, 3)[0]] for k in (1, 2, 3)]
    assert again == [[job.name for job in part] for part, _ in parts]
    for part, _ in parts:
        order = [job.name for job in part]
        assert order == [name for name in durations if name in order]


def test_more_shards_than_modules_leaves_some_empty(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"a": 5.0, "b": 5.0})
    got = [[job.name for job in shards.shard(jobs, k, 4)[0]] for k in (1, 2, 3, 4)]
    assert sorted(sum(got, [])) == ["a", "b"] and got.count([]) == 2


def test_bundled_manual_shards_cover_every_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real selection: the shard line on stderr, and the union of the shards is the manual."""
    monkeypatch.chdir(REPO)
    from fmbuild.evidence.selection import select
    from fmbuild.vault import load as loading

    config, vault = loading.load_project()
    selected = select([], vault, config)
    parts = [shards.shard(selected, k, 4)[0] for k in (1, 2, 3, 4)]
    assert sorted(j.name for p in parts for j in p) == sorted(j.name for j in selected)
    result = CliRunner().invoke(cli, ["verify", "--shard", "0/4"])
    assert result.exit_code == 2 and "--shard 0/4: K must be between 1 and N" in result.output
