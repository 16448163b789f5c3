"""How `fmbuild verify` shows results: a live progress display and one line per finished run
(stderr), a summary table, each module's claims with their worst-case margin over the seeds and the
details of what did not pass (stdout), JSON, and JUnit XML."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rich.markup import escape as _markup_escape

from fmbuild.evidence.runner import ClaimResult, Job, Result
from fmbuild.evidence.seeds import SeedClaim, SeedsResult
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


def format_margin(value: float | None) -> str:
    """A signed margin, four significant digits: `+0.0312`, `-2`, `-` when the claim has none."""
    if value is None:
        return "-"
    return f"{value:+.4g}"


def format_measured(claim: ClaimResult) -> str:
    """The measured value, or its range over the seeds (`0.91–0.94`)."""
    if isinstance(claim, SeedClaim) and len(claim.per_seed) > 1:
        span = claim.measured_range()
        if span is not None:
            low, high = span
            return _value(low) if low == high else f"{_value(low)}–{_value(high)}"
        values = {_value(v.measured) for v in claim.per_seed}
        return values.pop() if len(values) == 1 else " / ".join(_value(v.measured) for v in claim.per_seed)
    return _value(claim.measured)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "missing"
    return str(value)


def claim_verdict(claim: ClaimResult) -> str:
    if claim.ok:
        return "holds"
    if isinstance(claim, SeedClaim) and claim.flaky:
        return f"flaky (fails on seed {', '.join(map(str, claim.failed_seeds))})"
    return "fails"


def one_line(result: Result, seed: bool = False) -> str:
    """`passed  evasion-fgsm  42.1 s  cpu  claims 3/3  (cached)` with rich markup."""
    style = STYLE.get(result.status, "white")
    parts = [f"[{style}]{result.status:<7}[/]", f"[bold]{escape(result.module)}[/]"]
    if seed:
        parts.append(f"seed {result.seed}")
    if result.status != "skipped":
        parts.append(f"{result.duration_s:.1f} s")
        if result.device:
            parts.append(result.device)
        if result.node:
            parts.append(f"on {escape(result.node)}")
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

    def __init__(self, console: Console, total: int, several_seeds: bool = False) -> None:
        self.console = console
        self.several_seeds = several_seeds  # then each line names its seed
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

    def _label(self, name: str, seed: int) -> str:
        return f"{name}/{seed}" if self.several_seeds else name

    def started(self, job: Job, seed: int = 0) -> None:
        with self.lock:
            self.running.append(self._label(job.name, seed))
            if self.progress is not None:
                self.progress.update(self.task, description=self._describe())

    def finished(self, result: Result) -> None:
        with self.lock:
            label = self._label(result.module, result.seed)
            if label in self.running:
                self.running.remove(label)
            if self.progress is not None:
                self.progress.update(self.task, advance=1, description=self._describe())
            if self.several_seeds:  # with one seed, the module's line below says it all
                self.console.print(one_line(result, seed=True), highlight=False)

    def module_finished(self, result: Result) -> None:
        """Every seed of a module done: its verdict over the seeds and what became of its record."""
        with self.lock:
            line = one_line(result)
            if self.several_seeds and isinstance(result, SeedsResult):
                line = line.replace(f"[bold]{escape(result.module)}[/]",
                                    f"[bold]{escape(result.module)}[/]  seeds {','.join(map(str, result.seeds))}", 1)
            self.console.print(line, highlight=False)


def summary_table(results: list[Result]) -> Table:
    from rich.table import Table

    table = Table(title="Evidence", title_justify="left", show_lines=False)
    remote = any(r.node for r in results)  # on a cluster: where each module ran
    columns = ("module", "status", "claims", "worst margin", "duration", "device", *(("node",) if remote else ()),
               "cached", "reason")
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in results:
        style = STYLE.get(r.status, "white")
        status = f"[{style}]{r.status}[/]"
        if isinstance(r, SeedsResult) and r.flaky:
            status += " [red](flaky)[/]"
        table.add_row(
            escape(r.module), status, claims_summary(r), escape(_worst_claim(r)),
            f"{r.duration_s:.1f} s" if r.status != "skipped" else "-", r.device or "-",
            *((escape(r.node or "-"),) if remote else ()), "yes" if r.cached else "", escape(_clip(r.reason, REASON_WIDTH)),
        )
    return table


def _worst_claim(result: Result) -> str:
    """`accuracy +0.021` for the claim nearest to failing (margins in different units are not
    compared across claims: the smallest is simply the one named)."""
    margins = [(c.worst_margin, c.metric) for c in result.claims if isinstance(c, SeedClaim) and c.worst_margin is not None]
    if not margins:
        return "-"
    value, metric = min(margins)
    return f"{_clip(metric, 40)} {format_margin(value)}"


def claims_table(result: Result, seeds: list[int]) -> Table:
    """One module's claims: the measured value (its range over the seeds), the worst-case margin
    and the seed it came from, and whether the claim holds on every seed."""
    from rich.table import Table

    shown = ",".join(map(str, seeds))
    table = Table(title=f"{result.module} — claims on seed{'s' if len(seeds) > 1 else ''} {shown}",
                  title_justify="left", show_lines=False, box=None, pad_edge=False)
    for column in ("note", "claim", "measured", "worst margin", "verdict"):
        table.add_column(column, overflow="fold")
    for c in result.claims:
        worst = c.worst_margin if isinstance(c, SeedClaim) else None
        where = f" (seed {c.worst_seed})" if isinstance(c, SeedClaim) and worst is not None and len(seeds) > 1 else ""
        verdict = claim_verdict(c) if result.scale != "smoke" or not c.ok else "present"
        style = "green" if c.ok else "red"
        table.add_row(escape(c.note or "-"), escape(f"{c.metric} {c.expected}"), escape(format_measured(c)),
                      escape(format_margin(worst) + where), f"[{style}]{escape(verdict)}[/]")
    return table


def counts(results: Iterable[Result]) -> dict[str, int]:
    found = {s: 0 for s in STYLE}
    for r in results:
        found[r.status] = found.get(r.status, 0) + 1
    return found


def print_text(console: Console, results: list[Result], isolation: str, seeds: list[int] | None = None) -> None:
    if not results:
        console.print("No evidence modules selected.")
        return
    seeds = seeds or sorted({r.seed for r in results})
    console.print(summary_table(results))
    for r in results:
        if r.claims and r.status in ("passed", "failed"):
            console.print()
            console.print(claims_table(r, seeds))
    for r in results:
        if r.status == "failed":
            flaky = " [red](flaky)[/]" if isinstance(r, SeedsResult) and r.flaky else ""
            console.print(f"\n[red bold]failed[/] [bold]{escape(r.module)}[/]{flaky}")
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
    on = f" Seeds: {', '.join(map(str, seeds))}." if seeds else ""
    console.print(f"\n{total}.{on} Isolation: {escape(isolation)}", highlight=False)


def to_json(results: list[Result], isolation: str, device: str, seeds: list[int] | None = None) -> str:
    payload = {
        "seeds": seeds if seeds is not None else sorted({r.seed for r in results}),
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
        if r.cached or r.device or r.claims:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="device", value=r.device or "")
            ET.SubElement(props, "property", name="cached", value="true" if r.cached else "false")
            ET.SubElement(props, "property", name="node", value=r.node or "local")
            if isinstance(r, SeedsResult):
                ET.SubElement(props, "property", name="seeds", value=",".join(map(str, r.seeds)))
            for c in r.claims:  # one per claim: its worst-case margin over the seeds and its verdict
                worst = c.worst_margin if isinstance(c, SeedClaim) else None
                ET.SubElement(props, "property", name=f"claim {c.note}: {c.metric} {c.expected}",
                              value=f"{claim_verdict(c)}; measured {format_measured(c)}; worst margin {format_margin(worst)}")
    write_suite(suite, path)


def write_suite(suite: ET.Element, path: Path) -> None:
    """Write one JUnit test suite to `path`, whole or not at all (a temporary file, then a rename)."""
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
