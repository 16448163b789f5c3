"""The site reads a record's metrics exactly as claims and `fmbuild check` do (issue 20)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fmbuild.evidence.claims import MissingMetric, lookup
from fmbuild.site.evidence_view import ModuleEvidence

METRICS = {"fgsm.eps_0.1": 0.42, "clean": {"accuracy": 0.97}, "runs": [{"seconds": 3}], "group": {"a": 1}}


def module() -> ModuleEvidence:
    record = SimpleNamespace(metrics=METRICS)
    return ModuleEvidence(name="m", folder=Path("."), record=record, fresh=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["fgsm.eps_0.1", "clean.accuracy", "runs.0.seconds", "group", "missing.metric", "runs"])
def test_site_and_claims_agree(path: str) -> None:
    try:
        expected: tuple[bool, object] = (True, lookup(METRICS, path))
    except MissingMetric:
        expected = (False, None)
    assert module().metric(path) == expected


def test_flat_dotted_key_is_shown_and_a_group_is_not() -> None:
    assert module().metric("fgsm.eps_0.1") == (True, 0.42)
    assert module().metric("group") == (False, None)
