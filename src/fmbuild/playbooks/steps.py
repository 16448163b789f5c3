"""Runnable steps in a note: a fenced shell block with a step mark on the line right before it.

    %% step id=alerts exit=0 contains="siem.alert" json.lines="== alerts" %%
    ```bash
    jq -s '{lines: length}' evidence/siem-forwarding/record/artifacts/log.jsonl
    ```

The mark is an Obsidian comment, so Obsidian hides it and the site drops it: both show an
ordinary `bash` code block. Its fields (shell-quoted, `key=value`):

- `id` (required): `[a-z0-9][a-z0-9-]*`, unique in the note; the record and the site name the step by it.
- `exit`: the exit status the step must end with (default 0).
- `contains` (repeatable): text its output (stdout and stderr) must hold.
- `matches` (repeatable): a regular expression (at most 200 characters) searched in its output, multiline.
- `json.PATH`: a claim (`"<op> <value or expression>"`, the claim language of evidence blocks) on
  the JSON document the step prints on stdout (or the file `json-file` names, relative to the
  working folder); expressions may read other fields of the same document.
- `json-file`: where that JSON document is, relative to the playbook's working folder.
- `needs`: commands that must be on PATH (comma-separated); the step is skipped, with that reason, without them.
- `timeout`: seconds (default 120, at most 1800).

Nothing here runs anything: `parse_steps(text)` returns the steps and the problems with their
marks, each with its line, for `fmbuild check` (`step-invalid`) and `fmbuild verify`.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field

from fmbuild.evidence.claims import Claim, ClaimError, parse_claim

SHELL_LANGUAGES = ("bash", "sh", "shell")
KEYS = ("id", "exit", "contains", "matches", "json-file", "needs", "timeout")
DEFAULT_TIMEOUT = 120
MAX_TIMEOUT = 1800
MAX_PATTERN = 200
MARK_PREFIX = "%% step"
_MARK = re.compile(r"^[ \t]*%%[ \t]*step\b(?P<body>.*?)%%[ \t]*$")
_MARK_START = re.compile(r"^[ \t]*%%[ \t]*step\b")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
_COMMAND = re.compile(r"[A-Za-z0-9_.+-]+\Z")


@dataclass(frozen=True, slots=True)
class StepProblem:
    line: int
    message: str


@dataclass(frozen=True)
class Step:
    id: str
    line: int  # of the mark
    code: str  # the fenced block's content
    mark: str  # the mark exactly as written (what the cache key and the record keep)
    exit: int = 0
    contains: tuple[str, ...] = ()
    matches: tuple[str, ...] = ()
    json_claims: tuple[Claim, ...] = ()
    json_file: str | None = None
    needs: tuple[str, ...] = ()
    timeout: int = DEFAULT_TIMEOUT

    def expectations(self) -> list[str]:
        """What the step must show, in words (the record and the site print these)."""
        said = [f"exit {self.exit}"]
        said += [f"output contains {c!r}" for c in self.contains]
        said += [f"output matches /{m}/" for m in self.matches]
        where = f" of {self.json_file}" if self.json_file else ""
        said += [f"JSON{where} {c.metric} {c.source}" for c in self.json_claims]
        return said


@dataclass
class Steps:
    steps: list[Step] = field(default_factory=list)
    problems: list[StepProblem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps or self.problems)


def might_have_steps(text: str) -> bool:
    """A cheap test before parsing: no note without a mark pays for the line scan."""
    return "%%" in text and re.search(r"%%[ \t]*step\b", text) is not None


def parse_steps(text: str) -> Steps:
    found = Steps()
    if not might_have_steps(text):
        return found
    lines = text.split("\n")
    seen: dict[str, int] = {}
    fence: str | None = None  # the open fence of a code block we are inside (marks there are text)
    i = 0
    while i < len(lines):
        line = lines[i]
        fence_match = _FENCE.match(line)
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            i += 1
            continue
        if fence_match and ("`" not in fence_match["info"] or fence_match["fence"][0] == "~"):
            fence = fence_match["fence"]
            i += 1
            continue
        if not _MARK_START.match(line):
            i += 1
            continue
        number = i + 1
        mark = _MARK.match(line)
        if mark is None:
            found.problems.append(StepProblem(number, "a step mark must end with '%%' on the same line: "
                                                      "%% step id=NAME ... %%"))
            i += 1
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        opening = _FENCE.match(nxt)
        if opening is None:
            found.problems.append(StepProblem(number, "a step mark must stand on the line right before a "
                                                      "```bash fence (no blank line between)"))
            i += 1
            continue
        language = opening["info"].split()[0].lower() if opening["info"].split() else ""
        if language not in SHELL_LANGUAGES:
            shown = f"```{language}" if language else "a fence with no language"
            found.problems.append(StepProblem(number, f"a step runs a shell block; the fence after this mark is "
                                                      f"{shown}: write ```bash"))
            i += 1
            continue
        body, j = _fenced_body(lines, i + 1, opening["fence"], opening["indent"])
        step, problems = _parse_mark(mark["body"], line.strip(), number, body)
        found.problems += problems
        if step is not None:
            if step.id in seen:
                found.problems.append(StepProblem(number, f"step id {step.id!r} is already used on line {seen[step.id]}"))
            else:
                seen[step.id] = number
                found.steps.append(step)
        i = j
    return found


def _fenced_body(lines: list[str], start: int, fence: str, indent: str) -> tuple[str, int]:
    """The content of the fence opening at `start` and the index after its closing line."""
    body: list[str] = []
    j = start + 1
    while j < len(lines):
        stripped = lines[j].strip()
        if stripped.startswith(fence) and set(stripped) == {fence[0]}:
            return "\n".join(body) + "\n", j + 1
        body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
        j += 1
    return "\n".join(body) + "\n", j


def _parse_mark(body: str, raw: str, line: int, code: str) -> tuple[Step | None, list[StepProblem]]:
    problems: list[StepProblem] = []

    def bad(message: str) -> None:
        problems.append(StepProblem(line, message))

    try:
        tokens = shlex.split(body, comments=False, posix=True)
    except ValueError as exc:
        bad(f"step mark: {exc} (quote values with spaces: contains=\"two words\")")
        return None, problems
    values: dict[str, object] = {"contains": [], "matches": [], "json": []}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq:
            bad(f"step mark: {token!r} is not key=value")
            continue
        if key.startswith("json."):
            path = key[5:]
            try:
                values["json"].append(parse_claim(path, value))  # type: ignore[union-attr]
            except ClaimError as exc:
                bad(f"step mark: {key}: {exc}")
            continue
        if key not in KEYS:
            close = difflib.get_close_matches(key, [*KEYS, "json.FIELD"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(KEYS)}, json.FIELD"
            bad(f"step mark: unknown field {key!r}{hint}")
            continue
        if key in ("contains", "matches"):
            if not value:
                bad(f"step mark: {key} is empty")
                continue
            if key == "matches":
                if len(value) > MAX_PATTERN:
                    bad(f"step mark: matches is {len(value)} characters; at most {MAX_PATTERN}")
                    continue
                try:
                    re.compile(value, re.MULTILINE)
                except re.error as exc:
                    bad(f"step mark: matches {value!r} is not a regular expression: {exc}")
                    continue
            values[key].append(value)  # type: ignore[union-attr]
            continue
        if key in values:
            bad(f"step mark: {key} is given twice")
            continue
        values[key] = value
    step_id = values.get("id")
    if not isinstance(step_id, str) or not step_id:
        bad("step mark: id is required (id=NAME, lower case letters, digits and '-')")
        return None, problems
    if not _ID.match(step_id):
        bad(f"step mark: id {step_id!r} must be lower case letters, digits and '-' (at most 64)")
        return None, problems
    exit_code = _int(values.get("exit", "0"), "exit", 0, 255, bad)
    timeout = _int(values.get("timeout", str(DEFAULT_TIMEOUT)), "timeout", 1, MAX_TIMEOUT, bad)
    needs: list[str] = []
    for name in str(values.get("needs", "")).split(","):
        name = name.strip()
        if not name:
            continue
        if not _COMMAND.match(name):
            bad(f"step mark: needs {name!r} is not a command name")
            continue
        needs.append(name)
    json_file = values.get("json-file")
    if isinstance(json_file, str):
        if not json_file or json_file.startswith("/") or ".." in json_file.split("/"):
            bad(f"step mark: json-file {json_file!r} must be a path inside the working folder")
            json_file = None
        elif not values["json"]:
            bad("step mark: json-file names a document but no json.FIELD claim reads it")
    claims = tuple(values["json"])  # type: ignore[arg-type]
    if problems:
        return None, problems
    step = Step(
        id=step_id, line=line, code=code, mark=raw, exit=exit_code if exit_code is not None else 0,
        contains=tuple(values["contains"]), matches=tuple(values["matches"]),  # type: ignore[arg-type]
        json_claims=claims, json_file=json_file if isinstance(json_file, str) else None,
        needs=tuple(needs), timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
    )
    return step, problems


def _int(value: object, key: str, low: int, high: int, bad) -> int | None:  # noqa: ANN001
    try:
        number = int(str(value))
    except ValueError:
        bad(f"step mark: {key} must be a whole number, not {value!r}")
        return None
    if not low <= number <= high:
        bad(f"step mark: {key} must be between {low} and {high}, not {number}")
        return None
    return number
