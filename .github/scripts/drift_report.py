"""Which modules started failing although nothing in them changed (upstream library drift).

    python .github/scripts/drift_report.py VERIFY.json OUT.md

VERIFY.json is `fmbuild verify --no-cache --format json`. A module drifted when its committed
record passed, its inputs still hash to that record's, and the fresh run failed, errored or
timed out: something outside the repository changed (a package version, the platform). OUT.md
is written only then, with the package versions that differ from the record's; the scheduled
workflow opens an issue from it. Exit 0 either way; 2 when VERIFY.json cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fmbuild.config import find_config, load_config
from fmbuild.evidence.records import load_record

BROKEN = ("failed", "error", "timeout")


def drifted(results: list[dict[str, Any]], evidence_root: Path) -> list[dict[str, Any]]:
    found = []
    for result in results:
        if result.get("status") not in BROKEN:
            continue
        record = load_record(evidence_root / str(result.get("module")))
        if record is None or record.status != "passed" or record.inputs_hash != result.get("inputs_hash"):
            continue  # never passed, or the module itself changed: a pull request's business
        was = (record.environment or {}).get("packages", {}) if isinstance(record.environment, dict) else {}
        now = (result.get("environment") or {}).get("packages", {})
        changed = {name: (was.get(name), now.get(name)) for name in sorted(set(was) | set(now)) if was.get(name) != now.get(name)}
        found.append({"module": result["module"], "status": result["status"], "reason": result.get("reason", ""),
                      "recorded": record.date, "changed": changed,
                      "python": ((record.environment or {}).get("python"), (result.get("environment") or {}).get("python"))})
    return found


def markdown(items: list[dict[str, Any]]) -> str:
    lines = [(f"The scheduled re-verification found {len(items)} module(s) that passed when recorded and fail "
              "now, with their inputs unchanged: something upstream moved."), ""]
    for item in items:
        lines += [f"### `{item['module']}`: {item['status']}", "", f"- recorded passing: {item['recorded']}",
                  f"- now: {item['reason'] or item['status']}"]
        old_py, new_py = item["python"]
        if old_py != new_py:
            lines.append(f"- Python {old_py} → {new_py}")
        for name, (old, new) in item["changed"].items():
            lines.append(f"- `{name}` {old or 'absent'} → {new or 'absent'}")
        lines.append("")
    lines.append("Reproduce with `fmbuild verify --no-cache MODULE`; pin or adapt, then re-record.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        payload = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        results = payload["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"drift_report: {argv[0]}: not fmbuild verify JSON ({exc})", file=sys.stderr)
        return 2
    config_path = find_config(Path.cwd())
    if config_path is None:
        print("drift_report: run it in the project (no fmbuild.toml here)", file=sys.stderr)
        return 2
    items = drifted(results, load_config(config_path).evidence_root)
    out = Path(argv[1])
    if items:
        out.write_text(markdown(items), encoding="utf-8")
        print(f"drift_report: {len(items)} module(s) drifted; wrote {out}")
    else:
        out.unlink(missing_ok=True)
        print("drift_report: no drift")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
