"""Obsidian callouts (`> [!warning]- Title`) to admonitions (`??? warning "Title"`).

Foldable callouts become collapsible blocks (pymdownx.details): `-` collapsed, `+` open.
Nested callouts are converted from the inside out. Lines inside fenced code are left alone.
"""

from __future__ import annotations

import re

_START = re.compile(r"^(?P<indent>[ \t]*)>[ ]?\[!(?P<kind>[^\]\s]+)\](?P<fold>[+-]?)[ \t]*(?P<title>.*)$")
_QUOTED = re.compile(r"^(?P<indent>[ \t]*)>[ ]?(?P<rest>.*)$")

# Obsidian's callout types and their aliases all have a Material admonition style of the same
# name; anything else falls back to `note` (Obsidian does the same).
KNOWN = frozenset(
    ["note", "abstract", "summary", "tldr", "info", "todo", "tip", "hint", "important", "success", "check", "done", "question", "help", "faq", "warning", "caution", "attention", "failure", "fail", "missing", "danger", "error", "bug", "example", "quote", "cite"]
)


def convert_callouts(lines: list[str], fenced: list[bool]) -> list[str]:
    """`lines` with every callout turned into an admonition; `fenced[i]` marks code lines."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = None if fenced[i] else _START.match(lines[i])
        if m is None:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        body: list[str] = []
        body_fenced: list[bool] = []
        j = i + 1
        while j < len(lines):
            q = _QUOTED.match(lines[j])
            if q is None or q.group("indent") != indent:
                break
            body.append(q.group("rest"))
            body_fenced.append(fenced[j])
            j += 1
        out.extend(_admonition(m, indent, convert_callouts(body, body_fenced)))
        i = j
    return out


def _admonition(m: re.Match[str], indent: str, body: list[str]) -> list[str]:
    kind = m.group("kind").lower()
    style = kind if kind in KNOWN else "note"
    fold = m.group("fold")
    marker = {"": "!!!", "-": "???", "+": "???+"}[fold]
    title = m.group("title").strip() or kind.replace("-", " ").capitalize()
    title = title.replace("\\", "\\\\")
    lines = ["", f'{indent}{marker} {style} "{title}"']
    lines.extend(f"{indent}    {line}" if line.strip() else "" for line in body)
    lines.append("")
    return lines
