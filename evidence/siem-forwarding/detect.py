"""A small evaluator for the Sigma-layout rules in rules.yml, run over received ECS events.

Supported: one or more named selections (field -> value, or a list of values meaning OR; the
`|gte`, `|lte` and `|contains` modifiers), a condition that is a selection name, optionally
followed by `| count() by FIELD >= N` counted inside a sliding `timeframe`. Field names are ECS
dotted paths looked up in nested JSON. Anything else in a rule is refused when the rules load,
so a rule never silently matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

_CONDITION = re.compile(r"^(?P<sel>\w+)(?:\s*\|\s*count\(\)\s+by\s+(?P<by>[\w.@]+)\s*>=\s*(?P<n>\d+))?$")
_MODIFIERS = {"gte", "lte", "contains"}


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    level: str
    selection: dict[str, Any]
    group_by: str | None
    threshold: int
    timeframe_s: float


@dataclass(frozen=True)
class Alert:
    rule: str
    entity: str  # the value of the group-by field, or the event's own id for single-event rules
    first_seen: str
    count: int


class RuleError(ValueError):
    pass


def load_rules(path: Path) -> list[Rule]:
    rules = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8")):
        detection = raw.get("detection") or {}
        m = _CONDITION.match(str(detection.get("condition", "")).strip())
        if m is None or m["sel"] not in detection:
            raise RuleError(f"{raw.get('id')}: unsupported condition {detection.get('condition')!r}")
        selection = detection[m["sel"]]
        for key in selection:
            if "|" in key and key.split("|", 1)[1] not in _MODIFIERS:
                raise RuleError(f"{raw['id']}: unsupported modifier in {key!r}")
        rules.append(Rule(raw["id"], raw["title"], raw.get("level", "medium"), selection, m["by"],
                          int(m["n"] or 1), _seconds(str(raw.get("timeframe", "3600s")))))
    return rules


def _seconds(text: str) -> float:
    number, unit = float(text[:-1]), text[-1]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


def field(event: dict[str, Any], dotted: str) -> Any:
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _matches(event: dict[str, Any], selection: dict[str, Any]) -> bool:
    for key, expected in selection.items():
        name, _, modifier = key.partition("|")
        value = field(event, name)
        if value is None:
            return False
        options = expected if isinstance(expected, list) else [expected]
        if modifier == "gte":
            ok = any(isinstance(value, (int, float)) and value >= o for o in options)
        elif modifier == "lte":
            ok = any(isinstance(value, (int, float)) and value <= o for o in options)
        elif modifier == "contains":
            ok = any(str(o) in str(value) for o in options)
        else:
            ok = value in options
        if not ok:
            return False
    return True


def _epoch(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["@timestamp"]).replace("Z", "+00:00")).timestamp()


def peak_counts(rule: Rule, events: list[dict[str, Any]]) -> dict[str, int]:
    """For a count rule: the most matching events each entity had inside one `timeframe` window."""
    assert rule.group_by is not None
    windows: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    for e in sorted((e for e in events if _matches(e, rule.selection)), key=_epoch):
        entity = str(field(e, rule.group_by))
        times = windows.setdefault(entity, [])
        times.append(_epoch(e))
        while times and times[-1] - times[0] > rule.timeframe_s:
            times.pop(0)
        peaks[entity] = max(peaks.get(entity, 0), len(times))
    return peaks


def with_threshold(rule: Rule, threshold: float) -> Rule:
    """The same rule with a new threshold: the count for an aggregation, the `|gte` bound otherwise."""
    if rule.group_by is not None:
        return replace(rule, threshold=int(threshold))
    bounds = [k for k in rule.selection if k.endswith("|gte")]
    if len(bounds) != 1:
        raise RuleError(f"{rule.id}: no single |gte bound to set")
    return replace(rule, selection={**rule.selection, bounds[0]: threshold})


def evaluate(rules: list[Rule], events: list[dict[str, Any]]) -> list[Alert]:
    ordered = sorted(events, key=_epoch)
    alerts: list[Alert] = []
    for rule in rules:
        hits = [e for e in ordered if _matches(e, rule.selection)]
        if rule.group_by is None:
            alerts += [Alert(rule.id, str(field(e, "event.id") or i), e["@timestamp"], 1) for i, e in enumerate(hits)]
            continue
        windows: dict[str, list[float]] = {}
        fired: set[str] = set()
        for e in hits:
            entity = str(field(e, rule.group_by))
            times = windows.setdefault(entity, [])
            times.append(_epoch(e))
            while times and times[-1] - times[0] > rule.timeframe_s:
                times.pop(0)
            if len(times) >= rule.threshold and entity not in fired:
                fired.add(entity)  # one alert per entity per run: the analyst needs one ticket, not fifty
                alerts.append(Alert(rule.id, entity, e["@timestamp"], len(times)))
    return alerts


def alert_events(alerts: list[Alert]) -> list[dict[str, Any]]:
    """One `siem.alert` log event per alert, all of them: responders count and grep these lines."""
    return [{"rule": a.rule, "entity": a.entity, "first_seen": a.first_seen, "count": a.count} for a in alerts]
