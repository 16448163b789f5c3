"""How `fmbuild verify` shows results: a live progress display and one line per finished module
(stderr), a summary table with the details of what did not pass (stdout), JSON, and JUnit XML."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rich.markup import escape as _markup_escape

from fmbuild.evidence.runner import Job, Result
from fmbuild.terminal import printable


def escape(text: str) -> str:
    """Run output and names for the console: no rich markup, no terminal control sequences."""
    return _markup_escape(printable(text))

if TYPE_CHECKING:  # imported where used: a cached run in CI never draws a bar or a table
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

STYLE = {"passed": "green", "failed": "red", "error": "red", "timeout": "magenta", "skipped": "yellow"}
DETAIL_LOG_LINES = 15
REASON_WIDTH = 90  # in the table; the details below the table carry the whole text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def claims_summary(result: Result) -> str:
    if not result.claims:
        return "-"
    met = sum(1 for c in result.claims if c.ok)
    return f"{met}/{len(result.claims)}"


def one_line(result: Result) -> str:
    """`passed  evasion-fgsm  42.1 s  cpu  claims 3/3  (cached)` with rich markup."""
    style = STYLE.get(result.status, "white")
    parts = [f"[{style}]{result.status:<7}[/]", f"[bold]{escape(result.module)}[/]"]
    if result.status != "skipped":
        parts.append(f"{result.duration_s:.1f} s")
        if result.device:
            parts.append(result.device)
        parts.append(f"claims {claims_summary(result)}")
    if result.cached:
        parts.append("[dim](cached)[/]")
    if result.reason and result.status != "passed":
        parts.append(f"— {escape(result.reason)}")
    if result.record:
        parts.append(f"[dim]record {escape(result.record)}[/]")
    return "  ".join(parts)


class LiveReport:
    """Progress while running (stderr): a bar and the modules in flight, and a line per result."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        # A live display only on a terminal; in CI logs and pipes, just the lines.
        self.progress: Progress | None = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(), TextColumn("[bold]verify[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True,
            )
            self.task = self.progress.add_task("", total=total)
        self.running: list[str] = []
        self.lock = threading.Lock()

    def __enter__(self) -> "LiveReport":
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _describe(self) -> str:
        shown = ", ".join(escape(name) for name in self.running[:3])
        return shown + (f" +{len(self.running) - 3}" if len(self.running) > 3 else "")

    def started(self, job: Job) -> None:
        with self.lock:
            self.running.append(job.name)
            if self.progress is not None:
                self.progress.update(self.task, description=self._describe())

    def finished(self, result: Result) -> None:
        with self.lock:
            if result.module in self.running:
                self.running.remove(result.module)
            if self.progress is not None:
                self.progress.update(self.task, advance=1, description=self._describe())
            self.console.print(one_line(result), highlight=False)


def summary_table(results: list[Result]) -> Table:
    from rich.table import Table

    table = Table(title="Evidence", title_justify="left", show_lines=False)
    for column in ("module", "status", "claims", "duration", "device", "cached", "reason"):
        table.add_column(column, overflow="fold")
    for r in results:
        style = STYLE.get(r.status, "white")
        table.add_row(
            escape(r.module), f"[{style}]{r.status}[/]", claims_summary(r),
            f"{r.duration_s:.1f} s" if r.status != "skipped" else "-", r.device or "-",
            "yes" if r.cached else "", escape(_clip(r.reason, REASON_WIDTH)),
        )
    return table


def counts(results: Iterable[Result]) -> dict[str, int]:
    found = {s: 0 for s in STYLE}
    for r in results:
        found[r.status] = found.get(r.status, 0) + 1
    return found


def print_text(console: Console, results: list[Result], isolation: str) -> None:
    if not results:
        console.print("No evidence modules selected.")
        return
    console.print(summary_table(results))
    for r in results:
        if r.status == "failed":
            console.print(f"\n[red bold]failed[/] [bold]{escape(r.module)}[/]")
            for c in r.claims:
                if not c.ok:
                    where = f"{c.note}: " if c.note else ""
                    console.print(f"  {escape(where)}{escape(c.metric)} {escape(c.expected)} — {escape(c.message)}",
                                  highlight=False)
        elif r.status in ("error", "timeout"):
            console.print(f"\n[red bold]{r.status}[/] [bold]{escape(r.module)}[/]: {escape(r.reason)}")
            tail = r.log_tail.splitlines()[-DETAIL_LOG_LINES:]
            for line in tail:
                console.print(f"  [dim]│[/] {escape(line)}", highlight=False)
            if r.run_dir is not None:
                console.print(f"  [dim]full log: {escape(str(r.run_dir / 'log.txt'))}[/]")
    c = counts(results)
    total = ", ".join(f"{n} {s}" for s, n in c.items() if n)
    console.print(f"\n{total}. Isolation: {escape(isolation)}", highlight=False)


def to_json(results: list[Result], isolation: str, device: str) -> str:
    payload = {
        "results": [r.as_dict() for r in results],
        "counts": counts(results),
        "isolation": isolation,
        "host_device": device,
        "ok": all(r.ok for r in results),
    }
    return json.dumps(payload, indent=2, sort_keys=False, default=str)


def write_junit(path: Path, results: list[Result]) -> None:
    c = counts(results)
    suite = ET.Element(
        "testsuite", name="fmbuild verify", tests=str(len(results)), failures=str(c["failed"]),
        errors=str(c["error"] + c["timeout"]), skipped=str(c["skipped"]),
        time=f"{sum(r.duration_s for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="evidence", name=r.module, time=f"{r.duration_s:.3f}")
        if r.status == "failed":
            unmet = [c for c in r.claims if not c.ok]
            failure = ET.SubElement(case, "failure", message=r.reason, type="claim")
            failure.text = "\n".join(f"{c.note}: {c.metric} {c.expected}: {c.message}" for c in unmet)
        elif r.status in ("error", "timeout"):
            error = ET.SubElement(case, "error", message=r.reason, type=r.status)
            error.text = r.log_tail
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=r.reason)
        if r.cached or r.device:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="device", value=r.device or "")
            ET.SubElement(props, "property", name="cached", value="true" if r.cached else "false")
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
