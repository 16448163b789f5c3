"""Build a CycloneDX AI bill of materials: the Python environment the model was trained in,
the model, its training data and the code that trained it, with the lineage between them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL


@dataclass(frozen=True)
class Lineage:
    model_path: Path
    model_sha256: str
    data_name: str
    data_sha256: str
    data_rows: int
    code_path: Path
    code_sha256: str
    commit: str
    commit_source: str  # env | git | unknown
    training: dict[str, str]


def code_commit(repo_hint: Path) -> tuple[str, str]:
    """The commit of the code, never invented: the runner's FMBUILD_COMMIT, else git, else unknown."""
    env = os.environ.get("FMBUILD_COMMIT", "").strip()
    if env:
        return env, "env"
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_hint, capture_output=True, text=True, timeout=10)
        commit = proc.stdout.strip()
        if proc.returncode == 0 and len(commit) in (40, 64) and all(c in "0123456789abcdef" for c in commit):
            return commit, "git"
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown", "unknown"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (case, '_' and '.' do not matter)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def environment_components() -> list[Component]:
    seen: dict[str, Component] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = normalize(name)
        if key in seen:
            continue
        seen[key] = Component(
            name=name, version=dist.version, type=ComponentType.LIBRARY, bom_ref=f"pypi:{key}@{dist.version}",
            purl=PackageURL(type="pypi", name=key, version=dist.version),
        )
    return sorted(seen.values(), key=lambda c: c.name.lower())


def build(lineage: Lineage, frameworks: list[str]) -> tuple[Bom, dict[str, str]]:
    """The BOM, and the bom-refs of the model, data and code components."""
    libraries = environment_components()
    python = Component(name="python", version=platform.python_version(), type=ComponentType.PLATFORM,
                       bom_ref=f"python@{platform.python_version()}",
                       properties=[Property(name="python:implementation", value=platform.python_implementation()),
                                   Property(name="platform", value=platform.platform())])
    data = Component(name=lineage.data_name, type=ComponentType.DATA, bom_ref=f"data:{lineage.data_sha256[:16]}",
                     hashes=[HashType(alg=HashAlgorithm.SHA_256, content=lineage.data_sha256)],
                     properties=[Property(name="ml:rows", value=str(lineage.data_rows))])
    code = Component(name=lineage.code_path.name, type=ComponentType.FILE, bom_ref=f"code:{lineage.code_sha256[:16]}",
                     hashes=[HashType(alg=HashAlgorithm.SHA_256, content=lineage.code_sha256)],
                     properties=[Property(name="vcs:commit", value=lineage.commit),
                                 Property(name="vcs:commit-source", value=lineage.commit_source)])
    model = Component(name=lineage.model_path.name, type=ComponentType.MACHINE_LEARNING_MODEL,
                      bom_ref=f"model:{lineage.model_sha256[:16]}",
                      hashes=[HashType(alg=HashAlgorithm.SHA_256, content=lineage.model_sha256)],
                      properties=[Property(name=f"ml:training:{k}", value=v) for k, v in sorted(lineage.training.items())])
    bom = Bom()
    bom.metadata.component = model
    for component in [python, data, code, *libraries]:
        bom.components.add(component)
    by_name = {c.name.lower(): c for c in libraries}
    used = [by_name[f] for f in frameworks if f in by_name]
    bom.register_dependency(model, [data, code, python, *used])
    return bom, {"model": str(model.bom_ref), "data": str(data.bom_ref), "code": str(code.bom_ref)}


def to_json(bom: Bom) -> str:
    return JsonV1Dot6(bom).output_as_string(indent=2)


def validate(text: str) -> str | None:
    """None when the document is valid CycloneDX 1.6 JSON, else the validator's message."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)[:300]


def hashes_by_ref(text: str) -> dict[str, str]:
    doc = json.loads(text)
    components = [doc["metadata"]["component"], *doc.get("components", [])]
    return {c["bom-ref"]: h["content"] for c in components for h in c.get("hashes", []) if h["alg"] == "SHA-256"}

