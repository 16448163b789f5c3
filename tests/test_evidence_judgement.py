"""`evidence.judgement`: the note's current claims on every recorded seed, one view for all."""

from __future__ import annotations

from fmbuild.evidence.claims import parse_claim
from fmbuild.evidence.judgement import judge, judged_seeds
from fmbuild.evidence.records import Record


def record(per_seed: dict[int, dict]) -> Record:
    seeds = sorted(per_seed)
    return Record(module="m", status="passed", inputs_hash="", metrics=per_seed[seeds[0]], claims=[],
                  duration_s=1.0, device="cpu", isolation="none", environment={}, seed=seeds[0], scale="full",
                  date="2026-12-04", fmbuild="0", log_tail="", artifacts=[], seeds=seeds,
                  seed_metrics={str(s): m for s, m in per_seed.items()})


def test_met_on_every_seed_with_range_and_worst_margin() -> None:
    j = judge(parse_claim("acc", ">= 0.9"), record({0: {"acc": 0.95}, 1: {"acc": 0.93}, 2: {"acc": 0.97}}))
    assert (j.ok, j.verdict, j.low, j.high) == (True, "met", 0.93, 0.97)
    assert round(j.worst_margin, 6) == 0.03 and j.measured == 0.95


def test_flaky_names_the_seed_and_gives_its_message() -> None:
    j = judge(parse_claim("acc", ">= 0.9"), record({0: {"acc": 0.95}, 1: {"acc": 0.85}, 2: {"acc": 0.97}}))
    assert not j.ok and j.verdict == "flaky: not met on seed 1"
    assert j.message == "measured 0.85, expected >= 0.9" and j.failed_seeds == (1,)


def test_missing_metric_and_no_record() -> None:
    j = judge(parse_claim("gone", "== 1"), record({0: {"acc": 1}}))
    assert j.verdict == "not met" and j.measured is None and j.message == "the run did not produce metric 'gone'"
    none = judge(parse_claim("acc", ">= 0.9"), None)
    assert (none.ok, none.verdict, none.seeds) == (False, "no record", ())


def test_the_standard_picks_the_seeds() -> None:
    r = record({0: {"acc": 1}, 1: {"acc": 1}, 5: {"acc": 0}})
    assert judged_seeds(r, (0, 1, 2)) == [0, 1] and judged_seeds(r) == [0, 1, 5]
    assert judge(parse_claim("acc", "== 1"), r, (0, 1, 2)).ok
    assert judged_seeds(r, (7, 8)) == [0]
