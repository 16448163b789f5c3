"""The evidence contract: a note's `evidence` block and a module folder with its `module.toml`.

Both are read here into plain, validated data; everything else (runner, records, check rules)
works from these objects. Problems are collected as messages, never raised at the reader, so that
`fmbuild check` can report all of them and `fmbuild verify` can refuse one module and go on.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmbuild.evidence.claims import Claim, parse_claims

DEVICES = ("cpu", "gpu", "any")
ENTRY_POINTS = ("run.py", "notebook.ipynb")
MODULE_TOML = "module.toml"
# Folders inside a module that are outputs, never inputs of its hash.
NOT_INPUTS = {"record", "out", "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class EvidenceBlock:
    """A note's `evidence:` frontmatter, validated."""

    module: str  # as written: 'evidence/<name>'
    name: str  # '<name>'
    device: str | None  # cpu | gpu | any, None when the note leaves it to the module
    timeout: int | None
    claims: tuple[Claim, ...]
    claim_errors: tuple[tuple[str, str], ...]  # (metric, message) of claims that did not parse
    errors: tuple[str, ...]  # problems with the block's other fields


def read_evidence_block(value: Any, evidence_path: str = "evidence") -> EvidenceBlock | None:
    """The note's evidence block, or None when the note has none (or it is not a mapping)."""
    if not isinstance(value, dict):
        return None
    errors: list[str] = []
    known = {"module", "device", "timeout", "claims"}
    for key in sorted(set(map(str, value)) - known):
        errors.append(f"evidence.{key}: unknown field (known: {', '.join(sorted(known))})")
    module = value.get("module")
    name = ""
    if not isinstance(module, str) or not module.strip():
        errors.append(f"evidence.module: missing; name the module folder, e.g. '{evidence_path}/evasion-fgsm'")
        module = ""
    else:
        module = module.strip().rstrip("/")
        prefix = evidence_path.strip("/") + "/"
        if not module.startswith(prefix) or not _MODULE_NAME.match(module[len(prefix):]):
            errors.append(f"evidence.module: {module!r} must be '{prefix}<name>' (one folder under {prefix})")
        else:
            name = module[len(prefix):]
    device = value.get("device")
    if device is not None and device not in DEVICES:
        errors.append(f"evidence.device: {device!r} is not one of {', '.join(DEVICES)}")
        device = None
    timeout = value.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        errors.append(f"evidence.timeout: {timeout!r} must be a positive whole number of seconds")
        timeout = None
    claims, claim_errors = parse_claims(value.get("claims"))
    return EvidenceBlock(
        module=module,
        name=name,
        device=device,
        timeout=timeout,
        claims=tuple(claims),
        claim_errors=tuple(claim_errors),
        errors=tuple(errors),
    )


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A module folder and what its optional `module.toml` declares."""

    name: str
    path: Path  # absolute folder
    entry: str | None  # 'run.py' or 'notebook.ipynb'; None when neither exists
    title: str = ""
    device: str | None = None
    timeout: int | None = None
    cpus: int = 1  # CPUs one run asks a cluster for (`verify --executor ray`)
    requires: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # variable -> what file it names (required)
    optional_env: dict[str, str] = field(default_factory=dict)  # passed and bound when set; never a skip
    inputs: tuple[str, ...] = ()  # project-relative extra files the hash covers
    params: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def runnable(self) -> bool:
        return self.entry is not None and not self.errors


def read_module(path: Path) -> ModuleSpec:
    """Read a module folder; problems land in `errors` (a module with errors is not run)."""
    path = path.resolve()
    name = path.name
    errors: list[str] = []
    entries = [e for e in ENTRY_POINTS if (path / e).is_file()]
    entry = entries[0] if entries else None
    if not path.is_dir():
        errors.append(f"module folder {name!r} does not exist")
    elif entry is None:
        errors.append(f"module {name!r} has neither run.py nor notebook.ipynb")
    elif len(entries) > 1:
        errors.append(f"module {name!r} has both run.py and notebook.ipynb; keep one")
    data: dict[str, Any] = {}
    toml_path = path / MODULE_TOML
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            errors.append(f"{MODULE_TOML}: {exc}")
    known = {"title", "device", "timeout", "cpus", "requires", "env", "optional_env", "inputs", "params"}
    for key in sorted(set(data) - known):
        errors.append(f"{MODULE_TOML}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    title = data.get("title", "")
    if not isinstance(title, str):
        errors.append(f"{MODULE_TOML}: title must be a string")
        title = ""
    device = data.get("device")
    if device is not None and device not in DEVICES:
        errors.append(f"{MODULE_TOML}: device {device!r} is not one of {', '.join(DEVICES)}")
        device = None
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        errors.append(f"{MODULE_TOML}: timeout must be a positive whole number of seconds")
        timeout = None
    cpus = data.get("cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus <= 0:
        errors.append(f"{MODULE_TOML}: cpus must be a positive whole number of CPUs")
        cpus = 1
    requires = _strings(data.get("requires", []), "requires", errors)
    for item in requires:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", item):
            errors.append(f"{MODULE_TOML}: requires {item!r} is not an import name (e.g. 'torch')")
    env = _env_table(data, "env", errors)
    optional_env = _env_table(data, "optional_env", errors)
    inputs = _strings(data.get("inputs", []), "inputs", errors)
    for item in inputs:
        if Path(item).is_absolute() or ".." in Path(item).parts:
            errors.append(f"{MODULE_TOML}: input {item!r} must be a path inside the project")
    params = data.get("params", {})
    if not isinstance(params, dict):
        errors.append(f"{MODULE_TOML}: [params] must be a table")
        params = {}
    return ModuleSpec(
        name=name,
        path=path,
        entry=entry,
        title=title,
        device=device,
        timeout=timeout,
        cpus=cpus,
        requires=tuple(requires),
        env=env,
        optional_env=optional_env,
        inputs=tuple(inputs),
        params=dict(params),
        errors=tuple(errors),
    )


def _env_table(data: dict[str, Any], key: str, errors: list[str]) -> dict[str, str]:
    table = data.get(key, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        errors.append(f"{MODULE_TOML}: [{key}] must be a table of VARIABLE = \"what file it names\"")
        return {}
    for name in table:
        if not _ENV_NAME.match(name):
            errors.append(f"{MODULE_TOML}: [{key}] variable {name!r} must be UPPER_CASE")
    return dict(table)


def _strings(value: Any, key: str, errors: list[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{MODULE_TOML}: {key} must be a list of strings")
        return []
    return list(value)


def module_files(path: Path) -> list[Path]:
    """Every file of the module that is an input (sorted; record/ and out/ excluded)."""
    found: list[Path] = []
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        if child.name in NOT_INPUTS or child.name.startswith(".record"):
            continue
        if child.is_symlink():
            found.append(child)  # hashed by its target text, never followed
        elif child.is_dir():
            found.extend(module_files(child))
        elif child.is_file() and not child.name.endswith(".pyc"):
            found.append(child)
    return found
