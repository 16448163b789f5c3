"""Playbook step rules: malformed step marks, and `verified` earned by the steps' record.

- `step-invalid`: a `%% step … %%` mark that cannot be run as written (unknown field, bad
  claim, no shell fence after it, a duplicate id), at the mark's line.
- `maturity-unearned`: a note with steps that says `verified` without a committed, passing,
  fresh playbook record (`evidence/_playbooks/<note>/record.json`).
- `evidence-stale` (warning): the steps or a file they name changed since that record.

Only notes of the step types (`STEP_TYPES`) are read: the marks are parsed from the note's
text, and reading every note again would slow `check` down on a large vault.
"""

from __future__ import annotations

from typing import Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.playbooks.run import STEP_TYPES
from fmbuild.playbooks.state import playbook_state
from fmbuild.playbooks.steps import Steps, parse_steps


def step_notes(ctx: CheckContext) -> Iterator[tuple[str, Steps]]:
    """Each wanted playbook or command sheet with its parsed marks, read once per run."""
    cache = ctx.cache.setdefault("steps.parsed", {})
    assert isinstance(cache, dict)
    for note in ctx.vault.notes.values():
        if note.type in STEP_TYPES and ctx.wants(note.path):
            if note.path not in cache:
                try:
                    cache[note.path] = parse_steps((ctx.vault.root / note.path).read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    cache[note.path] = None  # the loader already reported why
            if cache[note.path] is not None:
                yield note.path, cache[note.path]


@rule("step-marks")
def check_step_marks(ctx: CheckContext) -> Iterator[Diagnostic]:
    for path, parsed in step_notes(ctx):
        for problem in parsed.problems:
            yield error(path, problem.line, 1, "step-invalid", problem.message)


@rule("step-maturity")
def check_step_maturity(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    for path, parsed in step_notes(ctx):
        if not parsed.steps:
            continue
        note = ctx.vault.notes[path]
        state, detail, _ = playbook_state(config, path)
        if note.maturity == "verified" and state != "passing":
            yield error(path, note.line_of("maturity"), 1, "maturity-unearned",
                        f"maturity: verified, but its steps have no passing, fresh record ({state}: {detail}); "
                        "use 'reviewed' until then")
        elif state == "stale":
            yield warning(path, parsed.steps[0].line, 1, "evidence-stale", f"the steps' record is stale: {detail}")
