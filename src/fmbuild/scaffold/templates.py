"""The Obsidian templates in `vault/templates/`, rendered by the same code as `fmbuild new`.

Obsidian's core Templates plugin fills `{{title}}` and `{{date:FORMAT}}`; the id is made from
the creation time to the second. What only `fmbuild new` can know (the ATLAS ID, the technique
a control counters, the module, which it creates) is left as a visible CHANGE-ME that `fmbuild
check` names until it is filled in.

    python -m fmbuild.scaffold.templates vault/templates     # rewrite the committed templates
"""

from __future__ import annotations

import sys
from pathlib import Path

from fmbuild.scaffold.notes import (
    DEFAULT_CHAPTER,
    ID_PREFIX,
    Edge,
    NoteSpec,
    render_note,
)
from fmbuild.scaffold.skeletons import KINDS

TITLE = "{{title}}"
DATE = "{{date:YYYY-MM-DD}}"
NOTE_ID = ID_PREFIX + "{{date:YYYYMMDDHHmmss}}"
MARK = "CHANGE-ME"


def template_spec(kind: str) -> NoteSpec:
    spec = NoteSpec(kind=kind, title=TITLE, note_id=NOTE_ID, date=DATE, chapter=DEFAULT_CHAPTER[kind], chapter_marked=True)
    if kind == "technique":
        spec.atlas = [f"{MARK}  # the MITRE ATLAS technique ID, e.g. AML.T0043"]
    if kind in ("pattern", "anti-pattern"):
        use = "Why this counters it: one sentence." if kind == "pattern" else "Why this opens the door to it: one sentence."
        spec.edges = [Edge(f"techniques/{MARK}", use)]
    if kind not in ("playbook", "reference"):  # a reference note may cite other modules' records only
        spec.module = f"evidence/{MARK}"
    return spec


def render_templates() -> dict[str, str]:
    return {f"{kind}.md": render_note(template_spec(kind)) for kind in KINDS}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m fmbuild.scaffold.templates FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_templates().items():
        (folder / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
