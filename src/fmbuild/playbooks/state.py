"""What a playbook's committed record says, for `fmbuild check`, the site and the Editions.

    playbook_state(config, note_path) -> ("none" | "passing" | "failing" | "stale", detail)

`stale` means the steps, or a file they name, changed since the record was written (its
`inputs_hash` no longer matches).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbuild.playbooks.run import Playbook, inputs_hash, load_record, playbook_of

if TYPE_CHECKING:
    from fmbuild.config import Config


def playbook_for(config: Config, note: str, title: str = "") -> Playbook | None:
    return playbook_of(config.vault_path, note, title)


def playbook_state(config: Config, note: str) -> tuple[str, str, dict[str, Any] | None]:
    playbook = playbook_for(config, note)
    if playbook is None:
        return "none", "the note marks no steps", None
    if playbook.invalid:
        return "failing", f"invalid step marks ({playbook.invalid[0]})", None
    record = load_record(config.evidence_root, playbook.name)
    if record is None:
        return "none", f"no committed record in {config.evidence.path}/_playbooks/{playbook.name}/", None
    if record.get("status") != "passed":
        return "failing", f"the committed record says {record.get('status')}", record
    recorded_ids = [s.get("id") for s in record.get("steps", []) if isinstance(s, dict)]
    if recorded_ids != [s.id for s in playbook.steps]:
        return "stale", "the record's steps are not the note's steps; run fmbuild verify --record", record
    if record.get("inputs_hash") != _hash(config.project_root, playbook):
        return "stale", "the steps or a file they name changed since the record; run fmbuild verify --record", record
    return "passing", f"recorded {record.get('date', '?')}, {len(recorded_ids)} steps passed", record


def _hash(project_root: Path, playbook: Playbook) -> str:
    # Not memoised: a file a step names may change between two calls in one process.
    return inputs_hash(project_root, playbook)
