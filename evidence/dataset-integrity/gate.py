"""The training-data integrity gate: a sha256 manifest checked before every training run.

Two checks, both real:
- `coreutils_check`: `sha256sum -c MANIFEST`, the one-line step pipelines copy around.
- `full_check`: the same digests, plus the folder listing (a file that is not in the manifest
  is a finding: `sha256sum -c` only looks at the files it lists) and a pinned digest of the
  manifest itself, so rewriting data and manifest together is caught.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(data_dir: Path, manifest: Path) -> str:
    """`sha256sum`-compatible lines (`<hex>  <relative path>`); returns the manifest's own digest."""
    lines = [f"{sha256_file(p)}  {p.relative_to(data_dir).as_posix()}"
             for p in sorted(data_dir.rglob("*")) if p.is_file()]
    manifest.write_text("\n".join(lines) + "\n")
    return sha256_file(manifest)


@dataclass
class GateResult:
    ok: bool
    findings: list[str] = field(default_factory=list)


def coreutils_check(data_dir: Path, manifest: Path) -> GateResult:
    proc = subprocess.run(["sha256sum", "--check", "--quiet", str(manifest.resolve())], cwd=data_dir,
                          capture_output=True, text=True, timeout=60)
    findings = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return GateResult(proc.returncode == 0, findings)


def full_check(data_dir: Path, manifest: Path, pinned_manifest_sha256: str) -> GateResult:
    findings: list[str] = []
    if not manifest.is_file():
        return GateResult(False, ["manifest missing"])
    if sha256_file(manifest) != pinned_manifest_sha256:
        findings.append("manifest digest differs from the pinned one")
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            findings.append(f"manifest line {number} is malformed")
            continue
        listed[name] = digest
    for name, digest in listed.items():
        path = data_dir / name
        if not path.is_file():
            findings.append(f"{name}: missing")
        elif sha256_file(path) != digest:
            findings.append(f"{name}: digest mismatch")
    present = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file()}
    findings += [f"{name}: not in manifest" for name in sorted(present - set(listed))]
    return GateResult(not findings, findings)
