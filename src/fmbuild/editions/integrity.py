"""`fmbuild edition verify`: re-hash every file an Edition's manifest lists and check its signature.

Each difference is named precisely: the file, and whether it is missing, has another size, has
other bytes of the same size (both hashes shown), or is a file the manifest does not list. The
manifest itself is covered by the signature: an edited manifest fails the signature check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fmbuild.editions.signing import SignatureCheck, check_signature
from fmbuild.editions.store import MANIFEST, SIGNATURE, StoredEdition


@dataclass
class IntegrityReport:
    name: str
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # about the Edition's own files
    source_problems: list[str] = field(default_factory=list)  # about the repository at its commit
    signature: SignatureCheck | None = None  # None: unsigned

    @property
    def ok(self) -> bool:
        return not self.problems and not self.source_problems and (self.signature is None or self.signature.ok)


def verify_edition(edition: StoredEdition, trusted: Ed25519PublicKey | list[Ed25519PublicKey] | None,
                   trusted_as: str = "the given key") -> IntegrityReport:
    """Every listed file re-hashed; the signature checked, against `trusted` keys when given
    (then an unsigned Edition is a problem too)."""
    report = IntegrityReport(edition.name)
    listed = edition.manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        report.problems.append(f"{MANIFEST}: lists no files")
        listed = {}
    for name in sorted(listed):
        expected = listed[name] if isinstance(listed[name], dict) else {}
        path = edition.folder / name
        if "/" in name or name.startswith(".") or name in (MANIFEST, SIGNATURE):
            report.problems.append(f"{MANIFEST}: lists an unexpected file name {name!r}")
            continue
        if path.is_symlink() or not path.is_file():
            report.problems.append(f"{name}: missing")
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        report.checked.append(name)
        if digest != expected.get("sha256"):
            size = expected.get("bytes")
            how = f"{len(data)} bytes instead of {size}" if isinstance(size, int) and size != len(data) else "same size, other bytes"
            report.problems.append(
                f"{name}: content differs from the manifest ({how}; sha256 {digest[:16]}…, manifest {str(expected.get('sha256'))[:16]}…)"
            )
    for path in sorted(edition.folder.iterdir()):
        if path.name not in listed and path.name not in (MANIFEST, SIGNATURE):
            report.problems.append(f"{path.name}: not listed in the manifest (added after the cut)")
    manifest_bytes = (edition.folder / MANIFEST).read_bytes()
    signature = edition.folder / SIGNATURE
    if signature.is_file():
        report.signature = check_signature(signature.read_bytes(), manifest_bytes, trusted, trusted_as)
    elif trusted:
        report.problems.append(f"{SIGNATURE}: missing; the Edition is not signed (fmbuild edition sign {edition.name} --key FILE)")
    return report


def verify_sources(edition: StoredEdition, project_root: Path) -> list[str]:
    """Check the manifest against the repository: each note's and each record file's hash at the
    Edition's commit. Returns one line per difference."""
    from fmbuild.editions.gitinfo import blobs_at

    manifest = edition.manifest
    vault = str(manifest.get("vault") or "vault").strip("/")
    wanted: dict[str, str] = {}
    for note in manifest.get("notes", []):
        wanted[f"{vault}/{note['path']}"] = str(note.get("sha256"))
    for module in manifest.get("modules", []):
        for name, digest in (module.get("record_files") or {}).items():
            wanted[f"{module['path']}/record/{name}"] = str(digest)
    blobs = blobs_at(project_root, str(manifest.get("commit")), sorted(wanted))
    problems = []
    for path, digest in sorted(wanted.items()):
        data = blobs[path]
        if data is None:
            problems.append(f"{path}: not in commit {str(manifest.get('commit'))[:12]}")
        elif hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{path}: differs at commit {str(manifest.get('commit'))[:12]} from the manifest's hash")
    return problems
