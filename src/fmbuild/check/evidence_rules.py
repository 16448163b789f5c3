"""Evidence rules: the evidence block and its claims, earned maturity, stale records, cited metrics.

- `evidence-invalid`: a block that is not a mapping, has bad fields, or names a missing module.
- `claim-invalid`: a claim the claim grammar cannot parse (`fmbuild.evidence.claims`).
- `maturity-unearned`: `maturity: verified` without a passing, fresh record for every claim,
  covering every seed of the standard (`[evidence].seeds`), each claim holding on each seed.
- `evidence-stale` (warning): the committed record predates a change to its module, or covers
  fewer seeds than the standard.
- `metric-unknown`: prose cites (`{{evidence:...}}`) a metric the record does not have.
- `log-unknown`: a log excerpt (`{{log:EVENT}}`, `{{log:EVENT:N}}`, `{{log:module/EVENT}}`) that
  is malformed, not alone on its line, or names an event the record's log has too few lines of.
- `plot-unknown`: a plot embed (`![[records/<module>/<plot>.png]]`) naming a module or plot the
  committed record does not hold, or one `verify --record` has not copied into the vault yet.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from fmbuild.check.registry import CheckContext, rule
from fmbuild.diagnostics import Diagnostic, error, warning
from fmbuild.evidence.claims import MissingMetric, lookup
from fmbuild.evidence.contract import EvidenceBlock, ModuleSpec, read_evidence_block, read_module
from fmbuild.evidence.records import PLOT_SUFFIXES, VAULT_RECORDS, Record, evidence_state, is_fresh, load_record, log_lines
from fmbuild.vault.model import Note


def _block(ctx: CheckContext, note: Note) -> EvidenceBlock | None:
    """The note's evidence block, read once per run (four rules ask for it)."""
    cache = ctx.cache.setdefault("evidence.blocks", {})
    assert isinstance(cache, dict) and ctx.config is not None
    if note.path not in cache:
        cache[note.path] = read_evidence_block(note.frontmatter.get("evidence"), ctx.config.evidence.path)
    return cache[note.path]


def _module(ctx: CheckContext, name: str) -> ModuleSpec:
    cache = ctx.cache.setdefault("evidence.modules", {})
    assert isinstance(cache, dict)
    if name not in cache:
        assert ctx.config is not None
        cache[name] = read_module(ctx.config.evidence_root / name)
    return cache[name]


def _record(ctx: CheckContext, name: str) -> Record | None:
    cache = ctx.cache.setdefault("evidence.records", {})
    assert isinstance(cache, dict)
    if name not in cache:
        assert ctx.config is not None
        cache[name] = load_record(ctx.config.evidence_root / name)
    return cache[name]


def _fresh(ctx: CheckContext, name: str, record: Record) -> bool:
    cache = ctx.cache.setdefault("evidence.fresh", {})
    assert isinstance(cache, dict)
    if name not in cache:
        assert ctx.config is not None
        cache[name] = is_fresh(record, ctx.config.evidence_root / name)
    return cache[name]


def _claim_line(ctx: CheckContext, note: Note, metric: str) -> int:
    """The line of a claim's key inside the evidence block (found in the text; else the block's line)."""
    start = note.line_of("evidence")
    try:
        from fmbuild.vault.load import read_note_text

        lines = read_note_text(ctx.vault, note.path).split("\n")
    except (OSError, UnicodeDecodeError):
        return start
    key = re.compile(r"^\s+['\"]?" + re.escape(metric) + r"['\"]?\s*:")
    for number in range(start, min(len(lines), note.body_line)):
        if key.match(lines[number - 1]):
            return number
    return start


@rule("evidence-block")
def check_evidence_block(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or "evidence" not in note.frontmatter:
            continue
        line = note.line_of("evidence")
        value = note.frontmatter.get("evidence")
        if value is None:
            continue  # an empty field is the schema rules' business (field-missing / field-invalid)
        block = _block(ctx, note)
        if block is None:
            yield error(note.path, line, 1, "evidence-invalid",
                        f"evidence must be a mapping with module, device, timeout and claims (got {type(value).__name__})")
            continue
        for problem in block.errors:
            yield error(note.path, line, 1, "evidence-invalid", problem)
        for metric, problem in block.claim_errors:
            yield error(note.path, _claim_line(ctx, note, metric), 1, "claim-invalid", f"claim on {metric}: {problem}")
        if not block.name:
            continue
        spec = _module(ctx, block.name)
        if not spec.path.is_dir():
            yield error(note.path, line, 1, "evidence-invalid",
                        f"{block.module}: no such module folder (create it, or fix the name)")
            continue
        for problem in spec.errors:
            yield error(note.path, line, 1, "evidence-invalid", f"{block.module}: {problem}")
        if block.device and spec.device and block.device != spec.device and "any" not in (block.device, spec.device):
            yield warning(note.path, line, 1, "evidence-invalid",
                          f"evidence.device is {block.device} but {block.module}/module.toml says {spec.device}")


def _earned_by_steps(ctx: CheckContext, note: Note) -> bool:
    from fmbuild.check.step_rules import STEP_TYPES
    from fmbuild.playbooks.steps import parse_steps

    if note.type not in STEP_TYPES:
        return False
    try:
        return bool(parse_steps((ctx.vault.root / note.path).read_text(encoding="utf-8")).steps)
    except (OSError, UnicodeDecodeError):
        return False


@rule("maturity-earned")
def check_maturity(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or note.maturity != "verified":
            continue
        line = note.line_of("maturity")
        block = _block(ctx, note)
        if block is None and _earned_by_steps(ctx, note):
            continue  # a playbook's steps earn it: check/step_rules.py judges their record
        if block is None:
            yield error(note.path, line, 1, "maturity-unearned",
                        "maturity: verified needs an evidence block whose committed record passes; "
                        "use 'reviewed' until then")
            continue
        if not block.claims and not block.claim_errors and not block.errors:
            yield error(note.path, line, 1, "maturity-unearned",
                        "maturity: verified, but the evidence block states no claims: say what the run must show")
            continue
        state, detail = evidence_state(config, note)
        if state != "passing":
            yield error(note.path, line, 1, "maturity-unearned",
                        f"maturity: verified without a passing, fresh record ({state}: {detail}); use 'reviewed' until then")


@rule("evidence-stale")
def check_stale(ctx: CheckContext) -> Iterator[Diagnostic]:
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        block = _block(ctx, note)
        if block is None or not block.name or not _module(ctx, block.name).path.is_dir():
            continue
        record = _record(ctx, block.name)
        if record is None:
            continue
        if not _fresh(ctx, block.name, record):
            yield warning(note.path, note.line_of("evidence"), 1, "evidence-stale",
                          f"{block.module} changed since its record of {record.date}; "
                          f"re-run: fmbuild verify --record {block.module}")
        elif ctx.config is not None and record.missing_seeds(ctx.config.evidence.seeds):
            yield warning(note.path, note.line_of("evidence"), 1, "evidence-stale",
                          f"the record of {block.module} covers seeds {record.seeds}, the standard is "
                          f"{list(ctx.config.evidence.seeds)}; re-run: fmbuild verify --record {block.module}")


@rule("metric-refs")
def check_metric_refs(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or not note.metric_refs:
            continue
        own = _block(ctx, note)
        unrecorded: set[str] = set()  # one warning per module without a record, not one per number
        for ref in note.metric_refs:
            name = ref.module or (own.name if own is not None else "")
            if not name:
                yield error(note.path, ref.line, ref.column, "metric-unknown",
                            f"{ref.raw}: this note has no evidence module; name one: {{{{evidence:<module>/{ref.metric}}}}}")
                continue
            if not (config.evidence_root / name).is_dir():
                yield error(note.path, ref.line, ref.column, "metric-unknown",
                            f"{ref.raw}: no evidence module named {name!r}")
                continue
            record = _record(ctx, name)
            if record is None:
                if name not in unrecorded:
                    unrecorded.add(name)
                    count = sum(1 for r in note.metric_refs if (r.module or (own.name if own else "")) == name)
                    cited = f"{ref.raw} and {count - 1} more" if count > 1 else ref.raw
                    yield warning(note.path, ref.line, ref.column, "metric-unknown",
                                  f"{cited}: {name} has no committed record yet, so the page cannot show these "
                                  f"numbers (run: fmbuild verify --record {name})")
                continue
            try:
                lookup(record.metrics, ref.metric)
            except MissingMetric as exc:
                known = ", ".join(sorted(_leaf_paths(record.metrics))[:8])
                yield error(note.path, ref.line, ref.column, "metric-unknown",
                            f"{ref.raw}: {exc.reason.replace('the run did not produce', 'the record of ' + name + ' has no')}"
                            f" (it has: {known})")


def _leaf_paths(metrics: object, prefix: str = "") -> list[str]:
    if isinstance(metrics, dict):
        found: list[str] = []
        for key, value in metrics.items():
            found += _leaf_paths(value, f"{prefix}{key}.")
        return found
    return [prefix.rstrip(".")]



@rule("log-refs")
def check_log_refs(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path) or not note.log_refs:
            continue
        own = _block(ctx, note)
        for ref in note.log_refs:
            if ref.problem:
                yield error(note.path, ref.line, ref.column, "log-unknown", f"{ref.raw}: {ref.problem}")
                continue
            name = ref.module or (own.name if own is not None else "")
            if not name:
                yield error(note.path, ref.line, ref.column, "log-unknown",
                            f"{ref.raw}: this note has no evidence module; name one: {{{{log:<module>/{ref.event}}}}}")
                continue
            if not (config.evidence_root / name).is_dir():
                yield error(note.path, ref.line, ref.column, "log-unknown", f"{ref.raw}: no evidence module named {name!r}")
                continue
            record = _record(ctx, name)
            if record is None:
                yield warning(note.path, ref.line, ref.column, "log-unknown",
                              f"{ref.raw}: {name} has no committed record yet, so the page cannot show this excerpt "
                              f"(run: fmbuild verify --record {name})")
                continue
            found = len(_log_events(ctx, name, record).get(ref.event, ()))
            if found == 0:
                known = ", ".join(sorted(_log_events(ctx, name, record))[:8]) or "no JSON event lines"
                yield error(note.path, ref.line, ref.column, "log-unknown",
                            f"{ref.raw}: the record of {name} has no log line with event {ref.event!r} (it has: {known})")
            elif found < ref.count:
                yield error(note.path, ref.line, ref.column, "log-unknown",
                            f"{ref.raw}: the record of {name} has {found} log line{'s' if found != 1 else ''} "
                            f"with event {ref.event!r}, not {ref.count}")


def _log_events(ctx: CheckContext, name: str, record: Record) -> dict[str, list[str]]:
    cache = ctx.cache.setdefault("evidence.log_events", {})
    assert isinstance(cache, dict)
    if name not in cache:
        cache[name] = log_lines(record)
    return cache[name]


def _plot_ref_names(ctx: CheckContext) -> Callable[[str | None], bool]:
    """Whether a link's file name could belong to a `records/<module>/<plot>` embed: a file under
    the vault's records folder, a file name the vault does not hold (a plot not copied yet, or a
    misspelt one), a module's own name (`records/<module>`), `records`, or a name only resolving
    can tell (`..`). Names of the vault's other attachments and of notes cannot."""
    config = ctx.config
    assert config is not None
    root = config.evidence_root
    possible = {p.name.lower() for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    possible.add(VAULT_RECORDS.lower())
    prefix = VAULT_RECORDS + "/"
    elsewhere: set[str] = set()
    for path in ctx.vault.attachments:
        name = path.rsplit("/", 1)[-1].lower()
        (possible if path.startswith(prefix) else elsewhere).add(name)
    elsewhere -= possible

    def could_be(name: str | None) -> bool:
        if name is None or name in possible:
            return True
        return "." in name and not name.endswith(".md") and name not in elsewhere
    return could_be


@rule("plot-refs")
def check_plot_refs(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    assert config is not None
    prefix = VAULT_RECORDS + "/"
    could_be_plot = _plot_ref_names(ctx)
    for note in ctx.vault.notes.values():
        if not ctx.wants(note.path):
            continue
        # The link names are kept packed in the parse cache; decoding every note's links just to
        # find none under records/ cost over a second on 10,000 notes.
        if not any(could_be_plot(name) for name in note.link_names):
            continue
        for link in note.links:
            if not link.is_embed:
                continue
            target = link.target.strip().replace("\\", "/").lstrip("/")
            if not target.startswith(prefix):
                continue
            module, _, plot = target[len(prefix):].partition("/")
            if not module or not plot:
                yield error(note.path, link.line, link.column, "plot-unknown",
                            f"{link.raw}: a plot embed names a module and a file: ![[records/<module>/<plot>.png]]")
                continue
            if not (config.evidence_root / module).is_dir():
                yield error(note.path, link.line, link.column, "plot-unknown", f"{link.raw}: no evidence module named {module!r}")
                continue
            record = _record(ctx, module)
            if record is None:
                yield warning(note.path, link.line, link.column, "plot-unknown",
                              f"{link.raw}: {module} has no committed record yet (run: fmbuild verify --record {module})")
                continue
            if plot not in record.artifacts:
                plots = [a for a in record.artifacts if a.lower().endswith(PLOT_SUFFIXES)]
                yield error(note.path, link.line, link.column, "plot-unknown",
                            f"{link.raw}: the record of {module} has no plot {plot!r} (it has: {', '.join(plots) or 'none'})")
            elif not (config.vault_path / target).is_file():
                yield error(note.path, link.line, link.column, "plot-unknown",
                            f"{link.raw}: the record of {module} has {plot} but the vault has no copy yet "
                            f"(run: fmbuild verify --record {module})")
