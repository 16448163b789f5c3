"""The three model scanners, run as libraries, each reduced to one verdict per file.

A verdict is `flagged`, `clean`, `error` (the scanner could not read the file) or `skipped`
(the scanner does not handle that file). Only `flagged` counts as a detection; `error` and
`skipped` are kept apart because a pipeline that only fails on `flagged` lets them through.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Verdict:
    status: str  # flagged | clean | error | skipped
    detail: str
    seconds: float

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"


def picklescan(path: Path) -> tuple[str, str]:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(str(path))
    if result.issues_count:
        names = sorted({f"{g.module}.{g.name}" for g in result.globals if str(g.safety) != "SafetyLevel.Innocuous"})
        return "flagged", f"{result.issues_count} dangerous global(s): {', '.join(names)}"
    if result.scan_err:
        return "error", "scan error"
    if result.scanned_files == 0:
        return "skipped", "no file scanned"
    return "clean", f"{len(result.globals)} global(s), none dangerous"


def modelscan(path: Path) -> tuple[str, str]:
    from modelscan.modelscan import ModelScan

    scan = ModelScan()
    scan.scan(str(path))
    issues = scan.issues.all_issues
    if issues:
        ops = sorted({f"{i.details.module}.{i.details.operator}" for i in issues})
        return "flagged", f"{len(issues)} issue(s): {', '.join(ops)}"
    if scan.errors:
        return "error", "; ".join(str(getattr(e, "message", e)) for e in scan.errors)[:200]
    if not scan.scanned:
        return "skipped", "; ".join(str(getattr(s, "message", s)) for s in scan.skipped)[:200] or "not scanned"
    return "clean", f"{len(scan.scanned)} part(s) scanned, no issue"


def fickling(path: Path) -> tuple[str, str]:
    import fickling as fk
    from fickling.analysis import Severity

    result = fk.scan_file(str(path), graceful=True)
    # fickling's own CLI treats anything above LIKELY_SAFE, parse failures included, as
    # "do not trust"; the verdict follows it.
    if result.severity != Severity.LIKELY_SAFE:
        reasons = [str(e) for e in result.errors] + [str(r).split("\n")[0] for r in result.results[:1]]
        reason = "; ".join(reasons)
        return "flagged", f"{result.severity.name}: {reason}"[:200]
    return "clean", "likely safe"


SCANNERS: dict[str, Callable[[Path], tuple[str, str]]] = {
    "picklescan": picklescan,
    "modelscan": modelscan,
    "fickling": fickling,
}


def scan(name: str, path: Path) -> Verdict:
    # The scanners log their own warnings; the run's log keeps only the verdicts.
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    try:
        status, detail = SCANNERS[name](path)
    except Exception as exc:  # a crash on a file is that scanner's error, not the run's
        status, detail = "error", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        logging.disable(logging.NOTSET)
    return Verdict(status, detail, time.perf_counter() - t0)
