"""Claims: every operator, every value kind, metric expressions, missing metrics, malformed claims."""

from __future__ import annotations

import pytest

from fmbuild.evidence.claims import ClaimError, MissingMetric, check_claim, check_presence, lookup, parse_claim, parse_claims

METRICS = {
    "clean_accuracy": 0.97,
    "fgsm_accuracy": 0.25,
    "robust_accuracy": 0.71,
    "count": 12,
    "safe": True,
    "format": "safetensors",
    "attack": {"pgd": {"accuracy": 0.05, "steps": 20}},
    "fgsm.eps_0.1": 0.5,  # a flat key with dots, as a module without the kit may write it
    "curve": [0.9, 0.8, 0.7],
}


def verdict(metric: str, text: str):
    return check_claim(parse_claim(metric, text), METRICS)


@pytest.mark.parametrize(
    ("metric", "text", "ok"),
    [
        ("clean_accuracy", ">= 0.95", True),
        ("clean_accuracy", ">= 0.98", False),
        ("clean_accuracy", "> 0.97", False),
        ("clean_accuracy", "<= 0.97", True),
        ("fgsm_accuracy", "< 0.3", True),
        ("fgsm_accuracy", "< 0.25", False),
        ("count", "== 12", True),
        ("count", "== 12.0", True),
        ("count", "!= 12", False),
        ("clean_accuracy", "== 0.97", True),
        ("safe", "== true", True),
        ("safe", "== false", False),
        ("safe", "!= false", True),
        ("format", "== 'safetensors'", True),
        ("format", '== "safetensors"', True),
        ("format", "!= 'pickle'", True),
        ("format", "== 'pickle'", False),
        ("attack.pgd.accuracy", "<= 0.1", True),
        ("attack.pgd.steps", "== 20", True),
        ("fgsm.eps_0.1", "== 0.5", True),
        ("curve.2", "== 0.7", True),
        ("count", ">= -1", True),
        ("count", "== 1.2e1", True),
    ],
)
def test_operators_and_values(metric: str, text: str, ok: bool) -> None:
    result = verdict(metric, text)
    assert result.ok is ok, result.message


@pytest.mark.parametrize(
    ("metric", "text", "ok"),
    [
        ("robust_accuracy", ">= fgsm_accuracy + 0.4", True),
        ("robust_accuracy", ">= fgsm_accuracy + 0.5", False),
        ("robust_accuracy", ">= (clean_accuracy + fgsm_accuracy) / 2", True),
        ("fgsm_accuracy", "<= clean_accuracy * 0.3", True),
        ("fgsm_accuracy", "< -(-clean_accuracy) - 0.8", False),
        ("attack.pgd.accuracy", "< fgsm_accuracy / 2", True),
        ("count", "== attack.pgd.steps - 8", True),
    ],
)
def test_expressions_over_other_metrics(metric: str, text: str, ok: bool) -> None:
    result = verdict(metric, text)
    assert result.ok is ok, result.message


def test_failure_message_shows_expected_and_measured() -> None:
    result = verdict("robust_accuracy", ">= fgsm_accuracy + 0.5")
    assert result.measured == 0.71
    assert "measured 0.71" in result.message
    assert "fgsm_accuracy + 0.5 = 0.75" in result.message


def test_missing_metric_is_a_failure_that_says_so() -> None:
    result = verdict("not_there", ">= 1")
    assert not result.ok
    assert result.measured is None
    assert "did not produce metric 'not_there'" in result.message
    deeper = verdict("attack.pgd.missing", ">= 1")
    assert "attack.pgd.missing" in deeper.message


def test_missing_metric_inside_the_expression() -> None:
    result = verdict("robust_accuracy", ">= nothing + 0.4")
    assert not result.ok
    assert result.message == "the expression needs metric 'nothing', which the run did not produce"
    grouped = verdict("robust_accuracy", ">= attack + 0.4")
    assert grouped.message == "the expression needs metric 'attack', which is a group, not a value"


def test_a_group_is_not_a_value() -> None:
    result = verdict("attack", "> 0")
    assert not result.ok
    assert "group" in result.message


@pytest.mark.parametrize(
    ("metric", "text", "fragment"),
    [
        ("format", ">= 1", "needs numbers"),
        ("safe", "== 1", "cannot compare"),
        ("count", "== 'twelve'", "cannot compare"),
        ("format", "> format", "needs numbers"),
        ("count", "> 1 / 0", "division by zero"),
        ("count", "> format + 1", "needs numbers"),
    ],
)
def test_type_mismatches_fail_with_a_reason(metric: str, text: str, fragment: str) -> None:
    result = verdict(metric, text)
    assert not result.ok
    assert fragment in result.message


@pytest.mark.parametrize(
    "text",
    ["", "0.9", "=> 0.9", ">= ", ">= (0.9", ">= 0.9)", ">= 0.9 0.8", ">= 1 >= 2", ">= 0.9 ; import os",
     ">= __import__('os')", ">= a[0]", ">= 'open", ">= 2 ** 3", ">= $x"],
)
def test_malformed_claims_are_refused(text: str) -> None:
    with pytest.raises(ClaimError):
        parse_claim("metric", text)


@pytest.mark.parametrize("value", [0.9, 1, True, None, ["a"]])
def test_non_string_claims_are_refused_with_a_fix(value: object) -> None:
    with pytest.raises(ClaimError) as info:
        parse_claim("metric", value)
    if isinstance(value, (int, float)):
        assert "==" in str(info.value)


def test_bad_metric_key() -> None:
    with pytest.raises(ClaimError):
        parse_claim("has space", ">= 1")
    with pytest.raises(ClaimError):
        parse_claim("a..b", ">= 1")


def test_parse_claims_collects_every_error() -> None:
    parsed, errors = parse_claims({"a": ">= 1", "b": "=> 2", "c": 3})
    assert [c.metric for c in parsed] == ["a"]
    assert [m for m, _ in errors] == ["b", "c"]
    _, errors = parse_claims(["not", "a", "mapping"])
    assert errors and "mapping" in errors[0][1]


def test_never_evaluates_python() -> None:
    # A metric path that looks like Python is just a (missing) metric name.
    claim = parse_claim("x", ">= os.system")
    assert claim.metric_paths() == ["x", "os.system"]
    assert not check_claim(claim, {"x": 1}).ok


def test_smoke_presence_checks_every_path_but_not_values() -> None:
    claim = parse_claim("robust_accuracy", ">= fgsm_accuracy + 10")
    assert check_presence(claim, METRICS).ok  # value would fail, presence is enough
    missing = parse_claim("robust_accuracy", ">= ghost + 1")
    assert not check_presence(missing, METRICS).ok


def test_lookup() -> None:
    assert lookup(METRICS, "attack.pgd.steps") == 20
    with pytest.raises(MissingMetric):
        lookup(METRICS, "curve.9")
    with pytest.raises(MissingMetric):
        lookup(METRICS, "count.sub")


# --- bounds: a claim is input like any other ------------------------------------------------------


@pytest.mark.parametrize("text, fragment", [
    (">= " + "-" * 1500 + "1", "characters long (at most 500)"),
    (">= " + "(" * 5000 + "1", "characters long (at most 500)"),
    ("== " + "9" * 5000, "characters long (at most 500)"),
    (">= " + "-" * 40 + "1", "nests deeper than 32 levels"),
    (">= " + "(" * 40 + "1" + ")" * 40, "nests deeper than 32 levels"),
    (">= " + "- (" * 20 + "1" + ")" * 20, "nests deeper than 32 levels"),
    ("== " + "9" * 60, "has 60 characters (at most 40)"),
    (">= 1e999", "too large to be a finite float"),
])
def test_hostile_claims_are_clear_errors_not_tracebacks(text: str, fragment: str) -> None:
    parsed, errors = parse_claims({"clean_accuracy": text})
    assert parsed == [] and len(errors) == 1
    assert fragment in errors[0][1]


def test_claims_within_the_bounds_still_parse_and_hold() -> None:
    deep = ">= " + "(" * 30 + "0.5" + ")" * 30
    assert check_claim(parse_claim("clean_accuracy", deep), METRICS).ok
    assert check_claim(parse_claim("clean_accuracy", ">= -" + "-" * 20 + "0.5"), METRICS).ok


@pytest.mark.parametrize("measured", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("text", ["!= 0.5", "== 0.5", ">= 0", "<= 1", "> -1e300", "< 1e300"])
def test_nan_and_infinity_fail_every_comparison(measured: float, text: str) -> None:
    verdict = check_claim(parse_claim("m", text), {"m": measured})
    assert not verdict.ok
    assert "not a finite number" in verdict.message


def test_a_non_finite_expression_fails_too() -> None:
    verdict = check_claim(parse_claim("m", "!= x * 2"), {"m": 1.0, "x": float("nan")})
    assert not verdict.ok and "is nan, not a finite number" in verdict.message


def test_arithmetic_that_overflows_is_a_failure_with_a_reason() -> None:
    verdict = check_claim(parse_claim("m", ">= big + 0.5"), {"m": 1.0, "big": 10**400})
    assert not verdict.ok and "overflows a float" in verdict.message


def test_a_very_long_metric_path_is_refused() -> None:
    with pytest.raises(ClaimError, match="characters long"):
        parse_claim("a." * 3000 + "b", ">= 1")
