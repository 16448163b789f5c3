"""Merge the reports of `fmbuild verify --shard K/N` runs into one verdict.

    fmbuild verify --merge shard-1.json --merge shard-2.json [--junit all.xml] [--format text|json]

Inputs are the JSON documents `--format json` wrote (and, optionally, the JUnit files `--junit`
wrote, merged into one suite). A module or playbook reported by two shards is an error, not a
silent choice between two verdicts; the merged verdict is ok only when every result is passed or
skipped. Nothing is re-run: the merge trusts the shard reports it is given.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from fmbuild.errors import FmError

OK_STATUSES = ("passed", "skipped")
STATUSES = ("passed", "failed", "error", "timeout", "skipped")


class MergeError(FmError, ValueError):
    """A report that cannot be merged; the message names the file and what is wrong."""


def read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{path}: not a JSON report of fmbuild verify ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise MergeError(f"{path}: not a JSON report of fmbuild verify (no \"results\" list)")
    for r in data["results"]:
        if not isinstance(r, dict) or not isinstance(r.get("module"), str) or r.get("status") not in STATUSES:
            raise MergeError(f"{path}: a result without a module name or a known status")
    return data


def merge_reports(paths: list[Path]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    playbooks: list[dict[str, Any]] = []
    where: dict[str, Path] = {}
    seeds: set[int] = set()
    isolation: list[str] = []
    for path in paths:
        data = read_report(path)
        for r in data["results"]:
            if r["module"] in where:
                raise MergeError(f"module {r['module']} is in {where[r['module']]} and in {path}: merge each shard once")
            where[r["module"]] = path
            results.append(r)
        for p in data.get("playbooks") or []:
            key = f"playbook {p.get('playbook') or p.get('note')}"
            if key in where:
                raise MergeError(f"{key} is in {where[key]} and in {path}: merge each shard once")
            where[key] = path
            playbooks.append(p)
        seeds.update(s for s in data.get("seeds") or [] if isinstance(s, int))
        if data.get("isolation") and data["isolation"] not in isolation:
            isolation.append(str(data["isolation"]))
    counts = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    return {
        "merged_from": [str(p) for p in paths],
        "seeds": sorted(seeds),
        "results": results,
        "counts": counts,
        "isolation": "; ".join(isolation),
        "playbooks": playbooks,
        "ok": all(r["status"] in OK_STATUSES for r in results) and all(p.get("status") in OK_STATUSES for p in playbooks),
    }


def merge_junit(paths: list[Path], out: Path) -> None:
    """One `fmbuild verify` test suite holding every shard's test cases, its totals recounted."""
    cases: list[ET.Element] = []
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise MergeError(f"{path}: not a JUnit file ({exc})") from None
        cases += root.iter("testcase")
    names = [c.get("name") for c in cases]
    twice = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if twice:
        raise MergeError(f"JUnit: module {twice[0]} is in two of the files: merge each shard once")
    suite = ET.Element(
        "testsuite", name="fmbuild verify", tests=str(len(cases)),
        failures=str(sum(c.find("failure") is not None for c in cases)),
        errors=str(sum(c.find("error") is not None for c in cases)),
        skipped=str(sum(c.find("skipped") is not None for c in cases)),
        time=f"{sum(float(c.get('time') or 0) for c in cases):.3f}",
    )
    suite.extend(cases)
    from fmbuild.evidence.report import write_suite

    write_suite(suite, out)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    lines = [f"{r['status']:<8} {r['module']}" + (f"  {r.get('reason')}" if r.get("reason") and r["status"] != "passed" else "")
             for r in doc["results"]]
    lines += [f"{p.get('status', '?'):<8} playbook {p.get('playbook') or p.get('note')}" for p in doc["playbooks"]]
    total = ", ".join(f"{n} {s}" for s, n in doc["counts"].items() if n) or "no results"
    lines.append(f"{total}; merged from {len(doc['merged_from'])} report(s): {'ok' if doc['ok'] else 'NOT ok'}")
    return lines
