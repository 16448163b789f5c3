"""Run a playbook's steps in order, in the evidence sandbox, and judge each one.

One playbook = one working folder (`$FMBUILD_OUT`) and one private `/tmp`, shared by its steps
and fresh for every run. Each step is `bash -e -o pipefail` over the fenced block, with the
repository as the read-only working directory (so `evidence/<m>/record/...` paths read the
committed records) and the project's `fmbuild` and Python on PATH, through the same executor
and limits as an evidence module (`fmbuild.evidence.isolation`).

Statuses per step: `passed`; `failed` (an expectation not met: expected and observed);
`error` (the step could not run or was killed by a signal); `timeout`; `skipped` (an earlier
step did not pass, or a command the step `needs` is missing). A playbook passes when every
step passes. Results are cached on the hash of the steps and of every repository file they
name (`inputs_hash`); `--record` commits a passing run under `evidence/_playbooks/`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from fmbuild import __version__
from fmbuild.evidence.cache import SealedStore
from fmbuild.evidence.claims import check_claim
from fmbuild.evidence.isolation import SANDBOX_OUT, Executor, Launch
from fmbuild.evidence.limits import Limits
from fmbuild.evidence.records import sanitize_log, secret_values
from fmbuild.playbooks.steps import Step, parse_steps

RECORD_ROOT = "_playbooks"  # under the evidence root; '_' keeps it out of the module list
RECORD_FILE = "record.json"
MAX_STEP_OUTPUT = 8000  # characters of one step's output kept in the record
STDOUT_FILE = ".fmbuild-step-stdout"
# The step runs under a wrapper that also keeps its stdout apart (for json.* claims); pipefail
# keeps the step's own exit status.
_WRAPPER = 'set -o pipefail; bash --noprofile --norc -e -o pipefail -c "$1" step | tee "$TMPDIR/' + STDOUT_FILE + '"'
# A path-like word of a step; `$VAR` or a glob inside it stands for the folder before it.
_PATHISH = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-*${}]+)+/?|fmbuild\.toml")


@dataclass
class Playbook:
    note: str  # vault-relative path
    title: str
    steps: list[Step]
    invalid: list[str] = field(default_factory=list)  # problems with marks ("line N: ...")

    @property
    def name(self) -> str:
        return self.note[:-3] if self.note.endswith(".md") else self.note


@dataclass
class StepResult:
    id: str
    line: int
    status: str
    command: str
    expected: list[str]
    unmet: str = ""  # the expectation not met, for a failed step
    observed: str = ""  # what was seen, for a step that did not pass (one line)
    exit: int | None = None
    duration_s: float = 0.0
    output: str = ""  # stdout+stderr, capped and cleaned

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PlaybookResult:
    playbook: str  # its name (vault path without .md)
    note: str
    status: str
    reason: str = ""
    steps: list[StepResult] = field(default_factory=list)
    duration_s: float = 0.0
    isolation: str = ""
    cached: bool = False
    inputs_hash: str = ""
    date: str = ""
    record: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")

    def as_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "note": self.note, "status": self.status, "reason": self.reason,
                "cached": self.cached, "duration_s": round(self.duration_s, 3), "isolation": self.isolation,
                "inputs_hash": self.inputs_hash, "date": self.date, "record": self.record,
                "steps": [s.as_dict() for s in self.steps]}


# --- finding playbooks ------------------------------------------------------------------------


def note_text(vault_root: Path, note: str) -> str:
    try:
        return (vault_root / note).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def playbook_of(vault_root: Path, note: str, title: str) -> Playbook | None:
    """The note's steps as a playbook, or None when it marks none."""
    parsed = parse_steps(note_text(vault_root, note))
    if not parsed:
        return None
    return Playbook(note, title, parsed.steps, [f"line {p.line}: {p.message}" for p in parsed.problems])


STEP_TYPES = ("playbook", "command-sheet")  # the note types whose marked steps run


def all_playbooks(vault: Any) -> list[Playbook]:
    found = []
    for path in sorted(vault.notes):
        if vault.notes[path].type not in STEP_TYPES:
            continue
        playbook = playbook_of(vault.root, path, vault.notes[path].title)
        if playbook is not None:
            found.append(playbook)
    return found


def record_dir(evidence_root: Path, playbook_name: str) -> Path:
    return evidence_root / RECORD_ROOT / playbook_name


def load_record(evidence_root: Path, playbook_name: str) -> dict[str, Any] | None:
    path = record_dir(evidence_root, playbook_name) / RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- the cache key: the steps and what they call ---------------------------------------------


def referenced_files(project_root: Path, steps: Iterable[Step], include_tool: bool = False) -> list[Path]:
    """Repository files the steps name (a folder stands for every file in it, a glob for the
    files it matches, a `for` loop's variable for each of its words). A step that runs `fmbuild`
    also depends on `fmbuild.toml` and, with `include_tool`, on the tool's source."""
    root = project_root.resolve()
    found: set[Path] = set()
    wide = False
    for step in steps:
        if re.search(r"(^|[\s;|&(])fmbuild\s", step.code):
            wide = True
        for token in _PATHISH.findall(_expand_for_loops(step.code)):
            if "$" not in token and "*" in token:
                try:
                    matched = list(root.glob(token.rstrip("/")))
                except (ValueError, OSError):
                    matched = []
                for path in matched:
                    if path.is_file():
                        found.add(path)
                    elif path.is_dir():
                        found.update(p for p in path.rglob("*") if p.is_file())
                continue
            token = token.split("$", 1)[0].rstrip("/")
            if not token or token in (".", ".."):
                continue
            candidate = root / token
            try:
                candidate = candidate.resolve()
            except OSError:
                continue
            if not candidate.is_relative_to(root) or candidate == root:
                continue
            if candidate.is_file():
                found.add(candidate)
            elif candidate.is_dir():
                found.update(p for p in candidate.rglob("*") if p.is_file())
    if wide:
        # The tool and its configuration; what a command reads of the vault or the evidence it
        # names by path (a step that checks the whole vault is judged on the vault of its run).
        base = root / "src" / "fmbuild"
        if include_tool and base.is_dir():
            found.update(p for p in base.rglob("*") if p.is_file())
        if (root / "fmbuild.toml").is_file():
            found.add(root / "fmbuild.toml")
    # The playbooks' own records are outputs, never inputs; caches and bytecode are not content.
    records = root / "evidence" / RECORD_ROOT
    return sorted(p for p in found if not p.is_relative_to(records) and p.suffix != ".pyc"
                  and not {".fmbuild", "__pycache__", ".git"} & set(p.relative_to(root).parts))


_FOR_LOOP = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\s+([^;\n]+)")


def _expand_for_loops(code: str) -> str:
    """The code with each `for VAR in a b c` loop's `$VAR`/`${VAR}` written out once per word,
    so that `evidence/$m/record` names the folders the loop really reads."""
    extra: list[str] = []
    for match in _FOR_LOOP.finditer(code):
        name, words = match[1], match[2].split()
        if not words or any(ch in w for w in words for ch in "$`*?(") :
            continue
        variable = re.compile(r"\$(?:\{%s\}|%s\b)" % (name, name))
        for word in words:
            extra.append(variable.sub(word, code))
    if not extra:
        return code
    # The loop's own line still names `$VAR`; the written-out copies say what it reads.
    return "\n".join(_FOR_LOOP.sub("", line) for line in extra)


def inputs_hash(project_root: Path, playbook: Playbook, include_tool: bool = False) -> str:
    """What the record's freshness rests on: the steps, fmbuild's version and the files they
    read. The cache key adds the tool's own source (`include_tool`): a cached pass must not
    outlive a change to the fmbuild a step runs, while a record, like a module's, goes stale
    on its inputs, not on every edit to the tool."""
    digest = hashlib.sha256()
    digest.update(f"fmbuild {__version__}\n".encode())
    for step in playbook.steps:
        digest.update(json.dumps([step.id, step.mark, step.code]).encode())
    root = project_root.resolve()
    for path in referenced_files(project_root, playbook.steps, include_tool):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookOptions:
    project_root: Path
    evidence_root: Path
    state_dir: Path  # `.fmbuild/evidence`
    executor: Executor
    limits: Limits  # timeout_s is replaced per step
    seed: int = 0
    use_cache: bool = True
    record: bool = False


def utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class PlaybookRunner:
    def __init__(self, options: PlaybookOptions) -> None:
        self.o = options
        self._secrets = secret_values()

    def run_all(self, playbooks: list[Playbook],
                on_finish: Callable[[PlaybookResult], None] | None = None) -> list[PlaybookResult]:
        results = []
        for playbook in playbooks:
            try:
                result = self.run(playbook)
            except Exception as exc:  # a bug here must not take the other playbooks down
                result = PlaybookResult(playbook.name, playbook.note, "error",
                                        f"fmbuild failed while running it: {type(exc).__name__}: {exc}", date=utc_now())
            if on_finish:
                on_finish(result)
            results.append(result)
        return results

    def run(self, playbook: Playbook) -> PlaybookResult:
        o = self.o
        base = PlaybookResult(playbook.name, playbook.note, "passed", date=utc_now(),
                              isolation=o.executor.describe(o.limits))
        if playbook.invalid:
            base.status, base.reason = "error", f"invalid step marks ({playbook.invalid[0]}); fmbuild check says more"
            return base
        base.inputs_hash = inputs_hash(o.project_root, playbook)
        tool = inputs_hash(o.project_root, playbook, include_tool=True)
        key = hashlib.sha256(f"{tool}|{o.executor.name}|{o.seed}".encode()).hexdigest()
        # Sealed like the run cache: a hand-edited entry is a miss, never a verdict or a record.
        store = SealedStore(o.state_dir / "playbooks")
        if o.use_cache:
            cached = store.get(key)
            if cached is not None:
                result = _from_dict(cached)
                result.cached = True
                self._maybe_record(result)
                return result
        result = self._execute(playbook, base)
        if result.status == "passed":
            store.put(key, result.as_dict())
        self._maybe_record(result)
        return result

    def _execute(self, playbook: Playbook, result: PlaybookResult) -> PlaybookResult:
        o = self.o
        work = o.state_dir / "work" / f"playbook-{uuid.uuid4().hex[:8]}"
        out_dir, tmp_dir = work / "out", work / "tmp"
        out_dir.mkdir(parents=True)
        tmp_dir.mkdir()
        blocked = ""  # why the remaining steps are skipped
        start = time.perf_counter()
        try:
            for step in playbook.steps:
                if blocked:
                    result.steps.append(StepResult(step.id, step.line, "skipped", step.code, step.expectations(),
                                                   observed=blocked))
                    continue
                missing = [n for n in step.needs if shutil.which(n, path=self._path()) is None]
                if missing:
                    result.steps.append(StepResult(step.id, step.line, "skipped", step.code, step.expectations(),
                                                   observed=f"needs {', '.join(missing)} (not on PATH here)"))
                    continue
                outcome = self._step(step, out_dir, tmp_dir)
                result.steps.append(outcome)
                if outcome.status != "passed":
                    blocked = f"step {step.id!r} {outcome.status}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result.duration_s = time.perf_counter() - start
        not_passed = [s for s in result.steps if s.status != "passed"]
        first = next((s for s in not_passed if s.status != "skipped"), None)
        if first is not None:
            result.status = first.status
            expected = f"expected {first.unmet}, observed " if first.unmet else ""
            result.reason = f"step {first.id!r} (line {first.line}) {first.status}: {expected}{first.observed}"
        elif not_passed:
            result.status = "skipped"
            result.reason = f"step {not_passed[0].id!r} skipped: {not_passed[0].observed}"
        elif not result.steps:
            result.status, result.reason = "error", "the note marks no runnable steps"
        return result

    def _path(self) -> str:
        return f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": self._path(), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg", "FMBUILD_SEED": str(self.o.seed), "FMBUILD_SCALE": "smoke",
            "PYTHONHASHSEED": str(self.o.seed), "NO_COLOR": "1", "TERM": "dumb",
        }
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        return env

    def _step(self, step: Step, out_dir: Path, tmp_dir: Path) -> StepResult:
        o = self.o
        limits = Limits(step.timeout, o.limits.memory_mb, o.limits.max_processes, o.limits.max_file_mb,
                        o.limits.max_log_bytes)
        stdout_file = tmp_dir / STDOUT_FILE
        stdout_file.unlink(missing_ok=True)
        launch = Launch(
            argv=["bash", "--noprofile", "--norc", "-c", _WRAPPER, "fmbuild-step", step.code],
            cwd=o.project_root, project_root=o.project_root, out_dir=out_dir, tmp_dir=tmp_dir, env=self._env(),
        )
        done = o.executor.run(launch, limits)
        output = self._clean(done.log.decode("utf-8", "replace"), out_dir, tmp_dir)
        kept = output if len(output) <= MAX_STEP_OUTPUT else (
            output[:MAX_STEP_OUTPUT] + f"\n[fmbuild: the step printed {len(output)} characters; kept {MAX_STEP_OUTPUT}]\n")
        outcome = StepResult(step.id, step.line, "passed", step.code, step.expectations(), exit=done.returncode,
                             duration_s=round(done.duration_s, 3), output=kept)
        if done.timed_out:
            outcome.status, outcome.observed = "timeout", f"still running after {step.timeout} s; the process tree was killed"
            return outcome
        if done.returncode == 127 and "fmbuild: could not start" in output:
            outcome.status, outcome.observed = "error", output.strip().splitlines()[-1]
            return outcome
        signal_name = done.signal_name
        if done.returncode != step.exit:
            if signal_name and step.exit == 0:
                outcome.status, outcome.observed = "error", f"killed by {signal_name}"
            else:
                outcome.status, outcome.unmet = "failed", f"exit {step.exit}"
                outcome.observed = f"exit {done.returncode}{_last_line(output)}"
            return outcome
        for text in step.contains:
            if text not in output:
                outcome.status, outcome.unmet = "failed", f"output contains {text!r}"
                outcome.observed = f"not in the output{_last_line(output)}"
                return outcome
        for pattern in step.matches:
            if re.search(pattern, output, re.MULTILINE) is None:
                outcome.status, outcome.unmet = "failed", f"output matches /{pattern}/"
                outcome.observed = f"no line matches{_last_line(output)}"
                return outcome
        if step.json_claims:
            document, problem = self._json_document(step, out_dir, stdout_file)
            if problem:
                outcome.status, outcome.unmet, outcome.observed = "failed", "a JSON document to judge", problem
                return outcome
            for claim in step.json_claims:
                verdict = check_claim(claim, document)
                if not verdict.ok:
                    outcome.status, outcome.unmet = "failed", f"JSON {claim.metric} {claim.source}"
                    outcome.observed = verdict.message.replace("the run did not produce metric", "the JSON has no field")
                    return outcome
        return outcome

    def _json_document(self, step: Step, out_dir: Path, stdout_file: Path) -> tuple[dict[str, Any], str]:
        where = f"{step.json_file} (in the working folder)" if step.json_file else "its stdout"
        # Messages below read after "observed".
        path = out_dir / step.json_file if step.json_file else stdout_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, f"no JSON document: {where} does not exist"
        except (OSError, UnicodeDecodeError) as exc:
            return {}, f"{where} cannot be read: {exc}"
        try:
            data = json.loads(text)
        except ValueError as exc:
            return {}, f"{where} is not JSON ({exc})"
        if not isinstance(data, dict):
            return {}, f"{where} holds a JSON {type(data).__name__}, not an object"
        return data, ""

    def _clean(self, text: str, out_dir: Path, tmp_dir: Path) -> str:
        replacements = {str(out_dir): "$FMBUILD_OUT", str(tmp_dir): "$TMPDIR", SANDBOX_OUT: "$FMBUILD_OUT",
                        str(self.o.project_root): "."}
        for secret in self._secrets:
            replacements[secret] = "[redacted]"
        return sanitize_log(text, replacements)

    def _maybe_record(self, result: PlaybookResult) -> None:
        if not self.o.record:
            return
        if result.status != "passed":
            result.record = f"not written: the run {result.status}"
            return
        target = record_dir(self.o.evidence_root, result.playbook)
        data = result.as_dict()
        data["cached"] = False
        data["fmbuild"] = __version__
        try:
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{RECORD_FILE}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            tmp.replace(target / RECORD_FILE)
        except OSError as exc:
            result.record = f"not written: {exc}"
            return
        result.record = "written"


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return f"; it printed: {lines[-1][:300]}" if lines else "; it printed nothing"


def _from_dict(data: dict[str, Any]) -> PlaybookResult:
    steps = [StepResult(**{k: s.get(k) for k in StepResult.__dataclass_fields__ if k in s}) for s in data.get("steps", [])]
    return PlaybookResult(
        playbook=data.get("playbook", ""), note=data.get("note", ""), status=data.get("status", "error"),
        reason=data.get("reason", ""), steps=steps, duration_s=float(data.get("duration_s", 0.0)),
        isolation=data.get("isolation", ""), inputs_hash=data.get("inputs_hash", ""), date=data.get("date", ""),
    )
