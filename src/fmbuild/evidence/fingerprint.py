"""What a run depends on, as hashes: the module's inputs and the environment that runs it.

- `inputs_hash(module_dir, spec)`: every file of the module (record/ and out/ excluded), the extra
  `inputs` it declares and its `[params]`. A committed record is fresh while this hash is unchanged.
- `environment(module)`: the interpreter, the platform, and the versions of the packages the
  module imports (found by reading its code, never by importing it) and those they require.
- `cache_key(...)`: inputs hash + environment + device class + scale + seed + runner version + the
  run's module name, timeout, limits, isolation and passed variables.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from fmbuild import __version__
from fmbuild.evidence.contract import ModuleSpec, module_files, read_module

# Bump when the meaning of a cached result changes (claims are not part of the key: they are
# re-checked against cached metrics on every run).
CACHE_FORMAT = 2  # 2: the run's module, timeout, limits, isolation and passed variables
_BUF = 1 << 20


def file_digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + hashlib.sha256(os.readlink(path).encode()).hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_BUF):
            h.update(chunk)
    return h.hexdigest()


def _project_root_of(module_dir: Path) -> Path:
    for folder in (module_dir, *module_dir.parents):
        if (folder / "fmbuild.toml").is_file():
            return folder
    return module_dir.parent.parent


def expand_inputs(spec: ModuleSpec, project_root: Path) -> list[tuple[str, Path | None]]:
    """Declared inputs as (project-relative name, file or None when missing); globs and folders expand."""
    found: list[tuple[str, Path | None]] = []
    for pattern in spec.inputs:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(p for p in project_root.glob(pattern) if p.is_file())
            if not matches:
                found.append((pattern, None))
            found += [(p.relative_to(project_root).as_posix(), p) for p in matches]
            continue
        path = project_root / pattern
        if path.is_dir():
            found += [(p.relative_to(project_root).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            found.append((pattern, path if path.is_file() else None))
    return found


def inputs_hash(module_dir: Path, spec: ModuleSpec | None = None, project_root: Path | None = None) -> str:
    """sha256 over the module's files, declared inputs and params (stable across machines)."""
    module_dir = Path(module_dir).resolve()
    spec = spec or read_module(module_dir)
    root = project_root or _project_root_of(module_dir)
    h = hashlib.sha256(b"fmbuild-inputs-v1\0")
    for path in module_files(module_dir):
        rel = path.relative_to(module_dir).as_posix()
        h.update(f"file\0{rel}\0{file_digest(path)}\n".encode())
    for name, path in expand_inputs(spec, root):
        digest = file_digest(path) if path is not None else "missing"
        h.update(f"input\0{name}\0{digest}\n".encode())
    h.update(b"params\0" + json.dumps(spec.params, sort_keys=True, default=str).encode())
    return h.hexdigest()


# --- imports and package versions ---------------------------------------------------------

_NOTEBOOK_MAGIC = re.compile(r"^\s*[%!].*$", re.M)


def module_imports(spec: ModuleSpec) -> set[str]:
    """Top-level names the module's code imports (run.py, helper .py files, notebook cells)."""
    names: set[str] = set(r.split(".")[0] for r in spec.requires)
    sources: list[str] = []
    for path in module_files(spec.path):
        if path.suffix == ".py" and not path.is_symlink():
            sources.append(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".ipynb" and not path.is_symlink():
            sources.extend(_notebook_code(path))
    local = {p.stem for p in spec.path.glob("*.py")} | {p.name for p in spec.path.iterdir() if p.is_dir()}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    # fmbuild itself (the kit) is covered by the runner's version in the key; its own
    # dependencies (click, mkdocs, ...) do not shape a module's numbers.
    return {n for n in names if n not in sys.stdlib_module_names and n not in local and n != "fmbuild"}


def _notebook_code(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    cells = data.get("cells", []) if isinstance(data, dict) else []
    code: list[str] = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            code.append(_NOTEBOOK_MAGIC.sub("", text))
    return code


def _site_dirs() -> list[Path]:
    return [Path(p) for p in sys.path if p and Path(p).is_dir()]


_FINGERPRINT_TTL_S = 5.0
_fingerprint_memo: tuple[float, str] | None = None


def _installed_fingerprint() -> str:
    """Cheap identity of the installed packages: the names of the metadata folders (they carry
    versions). Memoised for a few seconds: one `verify` asks once per module."""
    global _fingerprint_memo
    now = time.monotonic()
    if _fingerprint_memo is not None and now - _fingerprint_memo[0] < _FINGERPRINT_TTL_S:
        return _fingerprint_memo[1]
    value = _scan_installed()
    _fingerprint_memo = (now, value)
    return value


def _scan_installed() -> str:
    h = hashlib.sha256()
    for folder in _site_dirs():
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
        if names:  # folders without distributions (the script's own folder, a test folder) do not count
            h.update(str(folder).encode() + b"\0" + "\0".join(names).encode() + b"\n")
    return h.hexdigest()


_INDEX_MEMO: dict[str, dict[str, Any]] = {}
_INDEX_LOCK = threading.Lock()  # parallel jobs ask at once; build (and write) the index once


def distribution_index(cache_dir: Path | None = None) -> dict[str, Any]:
    """{'imports': {import name: [dist names]}, 'versions': {dist: version}, 'requires': {dist: [dists]}}.

    Building it scans every installed distribution (slow); it is kept in memory and in
    `cache_dir`, keyed by the installed set, so that a fully cached `fmbuild verify` stays fast.
    """
    with _INDEX_LOCK:
        return _distribution_index(cache_dir)


def _distribution_index(cache_dir: Path | None) -> dict[str, Any]:
    fingerprint = _installed_fingerprint()
    if fingerprint in _INDEX_MEMO:
        return _INDEX_MEMO[fingerprint]
    cache_file = cache_dir / "distributions.json" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text())
            if data.get("fingerprint") == fingerprint and data.get("python") == sys.version:
                _INDEX_MEMO[fingerprint] = data
                return data
        except (OSError, ValueError):
            pass
    import importlib.metadata as md

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    requires: dict[str, list[str]] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonicalize_name(name)
        versions.setdefault(key, dist.version)
        deps: list[str] = []
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            deps.append(canonicalize_name(req.name))
        requires.setdefault(key, sorted(set(deps)))
    imports = {
        mod: sorted({canonicalize_name(d) for d in dists})
        for mod, dists in md.packages_distributions().items()
    }
    data = {"fingerprint": fingerprint, "python": sys.version, "imports": imports, "versions": versions,
            "requires": requires}
    _INDEX_MEMO[fingerprint] = data
    if cache_file is not None:
        _write_json_quietly(cache_file, data)
    return data


def _write_json_quietly(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically; a cache that cannot be written is not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass


def package_versions(import_names: Iterable[str], cache_dir: Path | None = None) -> dict[str, str]:
    """Versions of the distributions behind these imports and of what they directly require."""
    index = distribution_index(cache_dir)
    direct: set[str] = set()
    for name in import_names:
        direct.update(index["imports"].get(name, []))
    wanted = set(direct)
    for dist in direct:
        wanted.update(index["requires"].get(dist, []))
    return {d: index["versions"][d] for d in sorted(wanted) if d in index["versions"]}


_IMPORTS_LOCK = threading.Lock()


def cached_module_imports(spec: ModuleSpec, digest: str, cache_dir: Path | None) -> set[str]:
    """`module_imports`, remembered per inputs hash: reading every module's code on each
    `verify` would cost more than the rest of a fully cached run."""
    if cache_dir is None:
        return module_imports(spec)
    path = cache_dir / "imports.json"
    with _IMPORTS_LOCK:
        try:
            known = json.loads(path.read_text())
            if not isinstance(known, dict):
                known = {}
        except (OSError, ValueError):
            known = {}
        key = f"{spec.name}:{digest}"
        if isinstance(known.get(key), list):
            return set(known[key])
        names = module_imports(spec)
        # keep one entry per module: the table stays as small as the evidence folder
        known = {k: v for k, v in known.items() if not k.startswith(f"{spec.name}:")}
        known[key] = sorted(names)
        _write_json_quietly(path, known)
        return names


def environment(spec: ModuleSpec, cache_dir: Path | None = None, digest: str | None = None) -> dict[str, Any]:
    imports = cached_module_imports(spec, digest, cache_dir) if digest else module_imports(spec)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
        "machine": platform.machine(),
        "packages": package_versions(imports, cache_dir),
    }


LARGE_FILE = 64 * 1024 * 1024


def file_identity(path: Path) -> str:
    """A declared data file (e.g. a GGUF model): its hash, or for a multi-GB file its name, size
    and modification time (hashing gigabytes on every run would cost more than the run)."""
    stat = path.stat()
    if stat.st_size > LARGE_FILE:
        return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{path.name}:sha256:{file_digest(path)}"


def cache_key(inputs: str, env: dict[str, Any], device: str, scale: str, seed: int,
              run: dict[str, Any] | None = None) -> str:
    """`run`: what else shapes the verdict of one run: the module's name (two modules with the
    same files are two experiments), its effective timeout and resource limits (a run that passed
    in 4 s under 60 s would time out under 2 s), the isolation it ran under and the variables the
    project passed into it."""
    material = {
        "run": run or {},
        "format": CACHE_FORMAT,
        "runner": __version__,
        "inputs": inputs,
        "python": env["python"],
        "implementation": env["implementation"],
        "machine": env["machine"],
        "packages": env["packages"],
        "files": env.get("files", {}),
        "device": device,
        "scale": scale,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
