"""A note's runnable steps on its page: each step's status, what it must show and its recorded
output, from the committed playbook record (escaped by the template; nothing invented: a step
the record lacks is 'not run')."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fmbuild.playbooks.run import RECORD_FILE, RECORD_ROOT, STEP_TYPES
from fmbuild.playbooks.state import playbook_for, playbook_state

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Note


def steps_panel(note: Note, config: Config | None) -> str:
    """The panel's HTML, or '' for a note without steps."""
    if config is None or note.type not in STEP_TYPES:
        return ""
    playbook = playbook_for(config, note.path, note.title)
    if playbook is None or not playbook.steps:
        return ""
    from fmbuild.site.pages import render_html

    state, _detail, record = playbook_state(config, note.path)
    recorded = {s.get("id"): s for s in (record or {}).get("steps", []) if isinstance(s, dict)}
    steps: list[dict[str, Any]] = []
    for step in playbook.steps:
        seen = recorded.get(step.id) if record is not None else None
        steps.append({
            "id": step.id, "line": step.line, "expected": step.expectations(),
            "status": str(seen.get("status", "error")) if seen else "not run",
            "observed": str(seen.get("observed", "")) if seen else "",
            "exit": seen.get("exit") if seen else None,
            "output": str(seen.get("output", "")) if seen else "",
            "recorded": seen is not None,
        })
    status = str(record.get("status", "error")) if record else "not run"
    duration = record.get("duration_s") if record else None
    return render_html(
        "steps_panel.html", name=playbook.name, note=f"{config.vault_path.name}/{note.path}", steps=steps,
        status=status, status_class=status.replace(" ", "-"), stale=state == "stale", record=record,
        duration=f"{duration:.1f} s" if isinstance(duration, (int, float)) else "",
        record_path=f"{config.evidence.path}/{RECORD_ROOT}/{playbook.name}/{RECORD_FILE}",
    )
