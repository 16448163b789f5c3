"""Committed evidence records: `evidence/<name>/record/` holds the module's latest passing run.

Layout: `record.json` (the fields of `Record`), `metrics.json`, `log.txt` (capped) and
`artifacts/` (the run's plots, JSON and the executed notebook, size-capped). The site, the
Editions and `fmbuild check` read records through this module:

    load_record(module_dir) -> Record | None
    inputs_hash(module_dir, spec) -> str
    is_fresh(record, module_dir) -> bool
    evidence_state(config, note) -> ("none" | "passing" | "failing" | "stale", detail)

A record is written into a fresh sibling folder and swapped in under a lock, so a reader never
sees half a record, concurrent writers take turns and a kill never leaves the module without one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbuild.evidence import safe_read
from fmbuild.evidence.metrics_file import dumps_strict

from fmbuild.evidence.contract import read_evidence_block, read_module
from fmbuild.evidence.limits import LIBC
from fmbuild.evidence.fingerprint import inputs_hash

if TYPE_CHECKING:
    from fmbuild.config import Config
    from fmbuild.vault.model import Note

__all__ = ["Record", "load_record", "write_record", "inputs_hash", "is_fresh", "evidence_state", "log_lines", "RECORD_DIR"]

RECORD_DIR = "record"
RECORD_FILE = "record.json"
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024  # one file
MAX_ARTIFACTS_TOTAL = 20 * 1024 * 1024  # all of a record's artifacts
MAX_RECORD_LOG_BYTES = 256 * 1024
# vault/records/<module>/: the recorded plots, copied there by `fmbuild verify --record` so a
# note can embed one (`![[records/<module>/<plot>.png]]`); generated, never notes.
VAULT_RECORDS = "records"
PLOT_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass
class Record:
    module: str
    status: str
    inputs_hash: str
    metrics: dict[str, Any]
    claims: list[dict[str, Any]]  # {note, metric, expected, measured, ok, message}
    duration_s: float
    device: str
    isolation: str
    environment: dict[str, Any]  # {python, platform, packages{...}, ...}
    seed: int
    scale: str
    date: str  # UTC ISO 8601
    fmbuild: str
    log_tail: str
    artifacts: list[str]  # names relative to artifact_dir
    # The seeds the record covers (the first is `seed`, whose run gave `metrics`, the log and the
    # artifacts) and every seed's metrics; a record written before seeds existed covers [seed].
    seeds: list[int] = field(default_factory=list)
    seed_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifact_dir: Path = field(default=Path("."), compare=False)

    def __post_init__(self) -> None:
        if not self.seeds:
            self.seeds = [self.seed]
        if not self.seed_metrics:
            self.seed_metrics = {str(self.seed): self.metrics}

    def metrics_of(self, seed: int) -> dict[str, Any] | None:
        return self.seed_metrics.get(str(seed))

    def missing_seeds(self, standard: tuple[int, ...] | list[int]) -> list[int]:
        """The seeds of the standard this record does not cover."""
        return [s for s in standard if s not in self.seeds or self.metrics_of(s) is None]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("artifact_dir")
        return data


_FIELDS = [f for f in Record.__dataclass_fields__ if f != "artifact_dir"]
_OPTIONAL = {"seeds", "seed_metrics"}  # absent from records written before verification across seeds


def load_record(module_dir: Path) -> Record | None:
    """The committed record of a module, or None when there is none or it cannot be read."""
    folder = Path(module_dir) / RECORD_DIR
    if not folder.exists():
        # a writer was killed between the two renames of its swap: the old record is still whole
        olds = sorted(Path(module_dir).glob(".record-old-*"), key=lambda p: p.name)
        folder = olds[-1] if olds else folder
    try:
        data = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(k not in data for k in _FIELDS if k not in _OPTIONAL):
        return None
    values = {k: data[k] for k in _FIELDS if k in data}
    if not isinstance(values["metrics"], dict) or not isinstance(values["claims"], list):
        return None
    seeds = values.get("seeds", [])
    per_seed = values.get("seed_metrics", {})
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return None
    if not isinstance(per_seed, dict) or not all(isinstance(m, dict) for m in per_seed.values()):
        return None
    return Record(**values, artifact_dir=folder / "artifacts")


def is_fresh(record: Record, module_dir: Path) -> bool:
    """True while the module's inputs still hash to what the record was made from."""
    return record.inputs_hash == current_inputs_hash(Path(module_dir))


# A check asks for the state of one module once per note that names it (and the graph once
# more per note): its files are hashed once per run of unchanged files, not once per question.
_HASH_MEMO: dict[str, tuple[tuple[Any, ...], str]] = {}
# A file modified this recently may change again within the file system's timestamp
# granularity without its identity changing ("racily clean", as git calls it): never memoised.
_RACY_S = 2.0


def current_inputs_hash(module_dir: Path) -> str:
    """`inputs_hash` of the module as it is now, memoised by the identities (path, size,
    mtime, inode) of its files, its declared inputs and module.toml."""
    module_dir = Path(module_dir).resolve()
    spec = read_module(module_dir)
    identity = _identity(module_dir, spec)
    key = str(module_dir)
    known = _HASH_MEMO.get(key)
    if identity is not None and known is not None and known[0] == identity:
        return known[1]
    digest = inputs_hash(module_dir, spec)
    if identity is not None:
        _HASH_MEMO[key] = (identity, digest)
    return digest


def _identity(module_dir: Path, spec: Any) -> tuple[Any, ...] | None:
    """What the module's hash depends on, cheaply; None when some file is too fresh to trust."""
    from fmbuild.evidence.contract import module_files
    from fmbuild.evidence.fingerprint import _project_root_of, expand_inputs

    try:
        inputs = expand_inputs(spec, _project_root_of(module_dir))
        paths = [*module_files(module_dir), *(p for _name, p in inputs if p is not None)]
        names = [name for name, _p in inputs]
        now = time.time()
        parts: list[Any] = [tuple(names), json.dumps(spec.params, sort_keys=True, default=str)]
        for path in paths:
            st = path.lstat()
            if now - st.st_mtime < _RACY_S:
                return None
            parts.append((str(path), st.st_size, st.st_mtime_ns, st.st_ino))
    except OSError:
        return None
    return tuple(parts)


def write_record(module_dir: Path, record: Record, out_dir: Path, log_text: str,
                 expected: dict[str, str] | None = None) -> Path:
    """Write `record/` from a finished run's output folder; returns the folder.

    `expected` (from a cache entry) maps each output file to its sha256: a file that differs, or
    one the entry does not list, is never copied and the record is not written (`RecordError`).
    Concurrent writers of one module take turns (an exclusive `flock` on the module folder); the
    new record is built in a sibling folder and exchanged with the old one in one atomic
    `renameat2(RENAME_EXCHANGE)` where the file system has it, else by two renames that the next
    writer (or reader) undoes if a kill fell between them. Leftover temporary folders are removed.
    """
    module_dir = Path(module_dir)
    with record_lock(module_dir):
        recover_record(module_dir)
        staging = module_dir / f".record-{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
        try:
            artifacts_dir = staging / "artifacts"
            artifacts_dir.mkdir()
            names, skipped = copy_artifacts(out_dir, artifacts_dir, expected)
            record.artifacts = names
            if skipped:
                note = "".join(f"[fmbuild: output {rel} not kept: {why}]\n" for rel, why in skipped)
                log_text = log_text.rstrip("\n") + "\n" + note
            (staging / "metrics.json").write_text(dumps_strict(record.metrics, indent=2, sort_keys=True) + "\n")
            (staging / "log.txt").write_text(_cap_text(log_text, MAX_RECORD_LOG_BYTES), encoding="utf-8")
            (staging / RECORD_FILE).write_text(
                dumps_strict(record.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            target = module_dir / RECORD_DIR
            _swap_in(staging, target, module_dir)
            record.artifact_dir = target / "artifacts"
            return target
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


class RecordError(OSError):
    """The record could not be written from this run (the message says why)."""


@contextlib.contextmanager
def record_lock(module_dir: Path) -> Iterator[None]:
    """Exclusive lock over a module's record (an flock on the module folder itself: no lock file
    to leave behind or to commit)."""
    fd = os.open(module_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def recover_record(module_dir: Path) -> None:
    """Undo an interrupted swap and remove temporary folders. Call with the record lock held."""
    target = module_dir / RECORD_DIR
    olds = sorted(module_dir.glob(".record-old-*"), key=lambda p: p.lstat().st_mtime, reverse=True)
    if not target.exists() and olds:
        olds[0].rename(target)  # a kill fell between the two renames: the old record comes back
        olds = olds[1:]
    for leftover in [*olds, *module_dir.glob(".record-*.tmp")]:
        shutil.rmtree(leftover, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where it is not available."""
    if LIBC is None or not hasattr(LIBC, "renameat2"):
        return False
    rc = LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_in(staging: Path, target: Path, module_dir: Path) -> None:
    if target.is_dir() and not target.is_symlink() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old record
        return
    old = module_dir / f".record-old-{uuid.uuid4().hex[:8]}"
    if target.exists() or target.is_symlink():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)



SKIP_ARTIFACTS = {"metrics.json"}


def copy_artifacts(out_dir: Path, dest: Path, expected: dict[str, str] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Copy the run's plain output files (no links, FIFOs, devices or hard links; per-file and
    total size caps); return the names kept and (name, why) of those left out.

    With `expected`, each copied file must hash to what the cache entry recorded for it."""
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    total = 0
    for item in safe_read.walk(out_dir):
        if item.rel in SKIP_ARTIFACTS:
            continue
        if item.problem:
            skipped.append((item.rel, item.problem))
            continue
        if item.size > MAX_ARTIFACT_BYTES or total + item.size > MAX_ARTIFACTS_TOTAL:
            skipped.append((item.rel, f"{item.size} bytes, over the record's size caps"))
            continue
        if expected is not None and item.rel not in expected:
            raise RecordError(f"the cached run folder holds {item.rel}, which its cache entry does not list")
        target = dest / item.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            digest = safe_read.copy_file(out_dir, item.rel, target, MAX_ARTIFACT_BYTES)
        except safe_read.UnsafeFile as exc:
            target.unlink(missing_ok=True)
            skipped.append((item.rel, str(exc)))
            continue
        if expected is not None and digest != expected[item.rel]:
            raise RecordError(f"{item.rel} changed since its run (its sha256 no longer matches the cache entry)")
        total += item.size
        names.append(item.rel)
    return names, skipped


def _cap_text(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    half = limit // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[fmbuild: {len(data) - 2 * half} bytes cut]\n{tail}"


def evidence_state(config: Config, note: Note) -> tuple[str, str]:
    """Whether the note's evidence stands: ("none" | "passing" | "failing" | "stale", detail).

    The note's *current* claims are checked against the record's measured metrics, so a claim
    edited after the run is judged honestly without a re-run.
    """
    block = read_evidence_block(note.frontmatter.get("evidence"), config.evidence.path)
    if block is None:
        return "none", "the note has no evidence block"
    if block.errors or block.claim_errors or not block.name:
        return "none", "the evidence block is invalid"
    module_dir = config.project_root / block.module
    if not module_dir.is_dir():
        return "none", f"module {block.module} does not exist"
    record = load_record(module_dir)
    if record is None:
        return "none", f"{block.module} has no committed record (run: fmbuild verify --record {block.module})"
    if record.status != "passed" or record.scale != "full":
        return "failing", f"the record of {block.module} is {record.status} at {record.scale} scale"
    from fmbuild.evidence.judgement import judge_all

    standard = config.evidence.seeds
    failing = [j for j in judge_all(block.claims, record, standard) if not j.ok]
    if failing:  # reported on the first seed where any claim fails
        seed = min(s for j in failing for s in j.failed_seeds)
        unmet = [j for j in failing if seed in j.failed_seeds]
        first = unmet[0]
        more = f" (and {len(unmet) - 1} more)" if len(unmet) > 1 else ""
        on = f" on seed {seed}" if len(record.seeds) > 1 or seed != record.seed else ""
        return "failing", f"claim {first.metric} {first.expected}{on}: {first.message}{more}"
    if not is_fresh(record, module_dir):
        return "stale", f"{block.module} changed since its record of {record.date} (run: fmbuild verify --record {block.module})"
    if record.missing_seeds(standard):
        return "stale", (f"the record of {block.module} covers seeds {record.seeds}, the standard is {list(standard)} "
                         f"(run: fmbuild verify --record {block.module})")
    claims = len(block.claims)
    return "passing", f"recorded {record.date}, {claims} claim{'s' if claims != 1 else ''} met"


def log_lines(record: Record) -> dict[str, list[str]]:
    """The record's JSON log lines by their `event` field, in the order they were logged (each
    line exactly as recorded). Lines that are not JSON objects with a string `event` are left out."""
    found: dict[str, list[str]] = {}
    try:
        text = (record.artifact_dir.parent / "log.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return found
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("{"):
            continue
        try:
            data = json.loads(stripped)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("event"), str):
            found.setdefault(data["event"], []).append(stripped)
    return found


def sanitize_log(text: str, replacements: dict[str, str]) -> str:
    """Replace absolute paths and secret values in a log before it is kept."""
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        if old:
            text = text.replace(old, new)
    return text


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the runner's environment variables that look like secrets (for redaction)."""
    environ = dict(os.environ if environ is None else environ)
    hints = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "ACCESS_KEY", "PRIVATE", "AUTH")
    return [v for k, v in environ.items() if len(v) >= 6 and any(h in k.upper() for h in hints)]
