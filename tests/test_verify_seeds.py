"""Verification across seeds: margins, flaky claims, the multi-seed record, `--seeds` and
`[evidence].seeds` (the `ev-seeds` vault: a module whose metric moves with the seed and one
whose claim holds on seeds 0 and 1 only)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fmbuild.config import ConfigError, load_config
from fmbuild.evidence.claims import parse_claim
from fmbuild.evidence.records import evidence_state, load_record
from fmbuild.evidence.runner import Job, NoteClaims, Result
from fmbuild.evidence.contract import read_module
from fmbuild.evidence.margins import margin
from fmbuild.evidence.seeds import merge
from fmbuild.vault.load import load_vault
from test_evidence_support import fmbuild, make_project


# --- margins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("claim", "metrics", "expected"), [
    (">= 0.9", {"m": 0.95}, 0.05),
    ("> 0.9", {"m": 0.85}, -0.05),
    ("<= 0.1", {"m": 0.04}, 0.06),
    ("< 10", {"m": 12}, -2),
    ("== 3", {"m": 3}, 0),
    ("== 3", {"m": 5}, -2),
    ("!= 3", {"m": 1}, 2),
    (">= base + 0.1", {"m": 0.5, "base": 0.3}, 0.1),
])
def test_margin_is_signed_distance_in_the_claims_units(claim: str, metrics: dict, expected: float) -> None:
    assert margin(parse_claim("m", claim), metrics) == pytest.approx(expected)


def test_margin_of_an_exactly_met_claim_is_plus_zero() -> None:
    value = margin(parse_claim("m", "<= 0.5"), {"m": 0.5})
    assert value == 0 and str(value) == "0.0"


@pytest.mark.parametrize(("claim", "metrics"), [
    ("== true", {"m": True}), ("== 'x'", {"m": "x"}), (">= 1", {}), (">= other", {"m": 1}),
])
def test_no_margin_without_numbers(claim: str, metrics: dict) -> None:
    assert margin(parse_claim("m", claim), metrics) is None


def _job(*claims: str) -> Job:
    parsed = tuple(parse_claim("recall", c) for c in claims)
    return Job(read_module(Path("/nonexistent/ev")), [NoteClaims("n.md", parsed)])


def _runs(values: dict[int, float]) -> dict[int, Result]:
    return {s: Result("ev", "passed", metrics={"recall": v}, seed=s) for s, v in values.items()}


def test_merge_flags_a_claim_holding_on_some_seeds_only_as_flaky() -> None:
    result = merge(_job(">= 0.88"), [0, 1, 2], _runs({0: 0.91, 1: 0.90, 2: 0.85}), "full")
    claim = result.claims[0]
    assert result.status == "failed" and claim.flaky and claim.failed_seeds == [2]
    assert claim.worst_margin == pytest.approx(-0.03) and claim.worst_seed == 2
    assert claim.measured == 0.91  # the first seed's value is the one prose cites
    assert result.reason == "recall >= 0.88: flaky: fails on seed 2: measured 0.85, expected >= 0.88"


def test_merge_failing_on_every_seed_is_not_flaky() -> None:
    result = merge(_job(">= 0.95"), [0, 1], _runs({0: 0.91, 1: 0.90}), "full")
    assert result.status == "failed" and not result.claims[0].flaky and result.claims[0].failed_seeds == [0, 1]
    assert "fails on seeds 0, 1: seed 0 measured 0.91" in result.reason


def test_merge_holding_on_every_seed_passes_with_the_smallest_margin() -> None:
    result = merge(_job(">= 0.8"), [0, 1, 2], _runs({0: 0.91, 1: 0.83, 2: 0.85}), "full")
    assert result.status == "passed" and result.claims[0].worst_margin == pytest.approx(0.03)


def test_merge_an_erroring_seed_makes_the_module_error_naming_the_seed() -> None:
    runs = _runs({0: 0.91, 2: 0.9})
    runs[1] = Result("ev", "error", "exited with code 1", seed=1)
    result = merge(_job(">= 0.8"), [0, 1, 2], runs, "full")
    assert result.status == "error" and result.reason == "seed 1: exited with code 1"


# --- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    project = make_project(tmp_path_factory.mktemp("seeds"), "ev-seeds")
    junit = project / "junit.xml"
    done = fmbuild(project, "verify", "--seeds", "0,1,2", "--jobs", "2", "--record", "--format", "json",
                   "--junit", str(junit))
    assert done.returncode == 1, done.stderr  # ev-flaky fails on seed 2
    return project, json.loads(done.stdout), junit


def test_json_shows_each_claims_seeds_worst_margin_and_flaky(recorded: tuple[Path, dict, Path]) -> None:
    _project, data, _junit = recorded
    assert data["seeds"] == [0, 1, 2]
    by = {r["module"]: r for r in data["results"]}
    flaky = by["ev-flaky"]
    assert flaky["status"] == "failed" and flaky["seeds"] == [0, 1, 2] and flaky["flaky"] == ["recall"]
    claim = flaky["claims"][0]
    assert claim["flaky"] is True and claim["failed_seeds"] == [2]
    assert claim["worst_margin"] == pytest.approx(-0.03)
    assert {s: v["measured"] for s, v in claim["seeds"].items()} == {"0": 0.91, "1": 0.90, "2": 0.85}
    seeded = {c["metric"]: c for c in by["ev-seeded"]["claims"]}
    assert by["ev-seeded"]["status"] == "passed"
    assert seeded["score"]["worst_margin"] == pytest.approx(0.01) and seeded["errors"]["worst_margin"] == 0
    assert seeded["label"]["worst_margin"] is None
    assert by["ev-flaky"]["record"] == "not written: the run failed (flaky on seeds [2])"


def test_record_covers_every_seed_and_plots_reach_the_vault(recorded: tuple[Path, dict, Path]) -> None:
    project, _data, _junit = recorded
    record = load_record(project / "evidence" / "ev-seeded")
    assert record is not None and record.seeds == [0, 1, 2] and record.seed == 0
    assert record.metrics["score"] == 0.9  # the first seed's metrics, as prose cites them
    assert {s: m["score"] for s, m in record.seed_metrics.items()} == {"0": 0.9, "1": 0.92, "2": 0.94}
    on_disk = json.loads((project / "evidence" / "ev-seeded" / "record" / "metrics.json").read_text())
    assert on_disk["score"] == 0.9
    claim = next(c for c in record.claims if c["metric"] == "score")
    assert claim["seeds"]["2"]["margin"] == pytest.approx(0.05)
    assert not (project / "evidence" / "ev-flaky" / "record").exists()
    plot = project / "vault" / "records" / "ev-seeded" / "score.png"
    assert plot.read_bytes() == (project / "evidence" / "ev-seeded" / "record" / "artifacts" / "score.png").read_bytes()
    assert "generated" in (project / "vault" / "records" / "README.md").read_text()
    config = load_config(project / "fmbuild.toml")
    vault = load_vault(config.vault_path, config, use_cache=False)
    assert "records/README.md" not in vault.notes  # the generated folder holds no notes
    state, detail = evidence_state(config, vault.notes["techniques/seeded.md"])
    assert state == "passing", detail


def test_junit_carries_margins_and_flaky(recorded: tuple[Path, dict, Path]) -> None:
    _project, _data, junit = recorded
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["ev-flaky"].find("failure")
    assert failure is not None and "flaky: fails on seed 2" in failure.get("message", "")
    props = {p.get("name"): p.get("value") for p in cases["ev-seeded"].iter("property")}
    assert props["seeds"] == "0,1,2"
    assert props["claim techniques/seeded.md: score >= 0.89"] == "holds; measured 0.9–0.94; worst margin +0.01"


def test_text_output_has_a_claims_table_per_module(recorded: tuple[Path, dict, Path]) -> None:
    project, _data, _junit = recorded
    done = fmbuild(project, "verify", "ev-flaky", "ev-seeded")  # cached now
    assert done.returncode == 1
    out = done.stdout
    assert "ev-flaky — claims on seeds 0,1,2" in out and "flaky (fails on seed 2)" in out
    assert "0.85–0.91" in out and "-0.03 (seed 2)" in out
    assert "+0.01 (seed 0)" in out
    assert "failed (flaky)" in out
    assert "ev-seeded  seed 2" in done.stderr and "(cached)" in done.stderr


def test_one_seed_record_is_stale_against_a_three_seed_standard(tmp_path: Path) -> None:
    project = make_project(tmp_path, "ev-seeds")
    toml = project / "fmbuild.toml"
    toml.write_text(toml.read_text().replace("seeds = [0, 1, 2]", "seed = 0"))
    done = fmbuild(project, "verify", "ev-seeded", "--record")
    assert done.returncode == 0, done.stderr + done.stdout
    # As a record written before seeds existed: no seeds, no seed_metrics.
    path = project / "evidence" / "ev-seeded" / "record" / "record.json"
    data = json.loads(path.read_text())
    del data["seeds"], data["seed_metrics"]
    path.write_text(json.dumps(data))
    toml.write_text(toml.read_text().replace("seed = 0", "seeds = [0, 1, 2]"))
    record = load_record(project / "evidence" / "ev-seeded")
    assert record is not None and record.seeds == [0] and record.missing_seeds((0, 1, 2)) == [1, 2]
    config = load_config(toml)
    vault = load_vault(config.vault_path, config, use_cache=False)
    state, detail = evidence_state(config, vault.notes["techniques/seeded.md"])
    assert state == "stale"
    assert detail == ("the record of evidence/ev-seeded covers seeds [0], the standard is [0, 1, 2] "
                      "(run: fmbuild verify --record evidence/ev-seeded)")
    checked = fmbuild(project, "check", "--format", "json", "--no-cache")
    stale = [d for d in json.loads(checked.stdout) if d["code"] == "evidence-stale"]
    assert [(d["path"], d["severity"], d["message"]) for d in stale] == [(
        "techniques/seeded.md", "warning",
        "the record of evidence/ev-seeded covers seeds [0], the standard is [0, 1, 2]; "
        "re-run: fmbuild verify --record evidence/ev-seeded",
    )]


@pytest.mark.parametrize(("args", "message"), [
    (("--seeds", "0,x"), "fmbuild: error: --seeds '0,x': 'x' is not a seed (expected non-negative integers, e.g. --seeds 0,1,2)"),
    (("--seeds", "1,1"), "fmbuild: error: --seeds '1,1': seed 1 is listed twice"),
    (("--seeds", "0", "--seed", "1"), "fmbuild: error: give --seeds or --seed, not both"),
    (("--seeds", "0,1", "--record"),
     "fmbuild: error: --record writes the record of the standard, [evidence].seeds = [0, 1, 2]: --seeds 0,1 lacks seed 2"),
])
def test_seed_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    project = make_project(tmp_path, "ev-seeds")
    done = fmbuild(project, "verify", "ev-seeded", *args)
    assert done.returncode == 2 and done.stderr.strip() == message and not done.stdout


@pytest.mark.parametrize(("lines", "message"), [
    ("seed = 0\nseeds = [0, 1]", "give either seed or seeds, not both"),
    ("seeds = []", "expected a non-empty list of integers"),
    ("seeds = [0, -1]", "[evidence].seeds[1]"),
    ("seeds = [1, 1]", "a seed is listed twice"),
])
def test_config_seeds_errors(tmp_path: Path, lines: str, message: str) -> None:
    toml = tmp_path / "fmbuild.toml"
    toml.write_text(f'[evidence]\npath = "evidence"\n{lines}\n')
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(toml)


def test_config_scalar_seed_still_reads_as_one_seed(tmp_path: Path) -> None:
    toml = tmp_path / "fmbuild.toml"
    toml.write_text('[evidence]\nseed = 4\n')
    ev = load_config(toml).evidence
    assert ev.seeds == (4,) and ev.seed == 4


def test_merge_orders_seeds_as_the_standard_not_as_they_finished() -> None:
    runs = _runs({2: 0.5, 0: 0.5, 1: 0.5})
    result = merge(_job(">= 0.8"), [0, 1, 2], runs, "full")
    assert [v.seed for v in result.claims[0].per_seed] == [0, 1, 2]
    assert "fails on seeds 0, 1, 2" in result.reason


def test_plots_are_never_written_through_a_link_out_of_the_vault(tmp_path: Path) -> None:
    from fmbuild.evidence.seeds import publish_plots

    artifacts, vault, outside = tmp_path / "a", tmp_path / "vault", tmp_path / "outside"
    for folder in (artifacts, vault / "records", outside):
        folder.mkdir(parents=True)
    (artifacts / "p.png").write_bytes(b"png")
    (vault / "records" / "m").symlink_to(outside)
    with pytest.raises(OSError, match="leads outside the vault"):
        publish_plots(artifacts, ["p.png"], vault, "m")
    assert list(outside.iterdir()) == []


def test_a_new_record_replaces_old_plots_and_keeps_other_files(tmp_path: Path) -> None:
    from fmbuild.evidence.seeds import publish_plots

    artifacts, vault = tmp_path / "a", tmp_path / "vault"
    artifacts.mkdir()
    (artifacts / "new.png").write_bytes(b"new")
    folder = vault / "records" / "m"
    folder.mkdir(parents=True)
    (folder / "old.png").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    assert publish_plots(artifacts, ["new.png", "data.json"], vault, "m") == ["new.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["new.png", "notes.txt"]


def test_every_seeds_runner_shares_one_gpu_lock(tmp_path: Path) -> None:
    from fmbuild.evidence.seeds import SeedsRunner
    from test_evidence_support import make_runner

    project = make_project(tmp_path, "ev-seeds")
    options = make_runner(project).o
    seeds = SeedsRunner(options, [0, 1, 2])
    assert seeds.run_all([], gpu_parallel=1) == []
    locks = {id(r._gpu_lock) for r in seeds.runners.values()}
    assert len(locks) == 1 and [r.o.seed for r in seeds.runners.values()] == [0, 1, 2]
    assert not any(r.o.record for r in seeds.runners.values())  # only the seeds layer writes the record


def test_one_seed_output_keeps_the_one_line_per_module(tmp_path: Path) -> None:
    project = make_project(tmp_path, "ev-seeds")
    done = fmbuild(project, "verify", "ev-seeded", "--seed", "1", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["seeds"] == [1] and data["results"][0]["metrics"]["score"] == 0.92
    assert "seed 1" not in done.stderr and done.stderr.count("ev-seeded") == 1
