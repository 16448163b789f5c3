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


# fickling reports "could not read this" as findings too: a parse error ("No pickle files
# detected" on a zip-format torch file), an unnamed "invalid opcode(s)" result, or an
# InterpretationError on malformed opcodes. None of those says anything about the payload.
FICKLING_NON_FINDINGS = {None, "InterpretationError"}


def fickling(path: Path) -> tuple[str, str]:
    import fickling as fk
    from fickling.analysis import Severity

    result = fk.scan_file(str(path), graceful=True)
    findings = [f for group in result.results for f in group.results
                if f.severity != Severity.LIKELY_SAFE and f.analysis_name not in FICKLING_NON_FINDINGS]
    if findings:
        # a real detection: an analysis named something in the pickle (an import, a call)
        worst = max(findings, key=lambda f: f.severity.value[0])
        return "flagged", f"{worst.severity.name} ({worst.analysis_name}): {worst.message}"[:200]
    if result.severity != Severity.LIKELY_SAFE:
        # fickling's own CLI calls this "do not trust", but it analysed nothing: the verdict is an
        # error (a pipeline may block on it), never a detection
        reasons = [str(e) for e in result.errors] + [str(f.message) for group in result.results
                                                     for f in group.results if f.severity != Severity.LIKELY_SAFE][:1]
        return "error", f"could not analyse: {'; '.join(reasons)}"[:200]
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
