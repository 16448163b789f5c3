"""Sign a model folder's manifest with Ed25519 and refuse to load anything that does not verify.

The scheme follows what OpenSSF model signing does: hash every file of the model, put the
digests in a manifest, sign the manifest's canonical bytes. Verification recomputes every
digest, so one changed byte anywhere in the model fails it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNATURE_FILE = "model.sig.json"


class VerificationError(Exception):
    """The model must not be loaded; the message says why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def manifest_of(folder: Path, name: str, version: str) -> dict[str, Any]:
    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SIGNATURE_FILE}
    return {"name": name, "version": version, "files": files}


def canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def sign(folder: Path, name: str, version: str, key: Ed25519PrivateKey) -> Path:
    manifest = manifest_of(folder, name, version)
    envelope = {
        "manifest": manifest,
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(key.sign(canonical(manifest))).decode(),
    }
    path = folder / SIGNATURE_FILE
    path.write_text(json.dumps(envelope, indent=2, sort_keys=True))
    return path


@dataclass(frozen=True)
class Verified:
    name: str
    version: str
    key_id: str


def verify(folder: Path, trusted: dict[str, Ed25519PublicKey], expect_name: str | None = None) -> Verified:
    sig_path = folder / SIGNATURE_FILE
    if not sig_path.is_file():
        raise VerificationError("unsigned: no model.sig.json")
    try:
        envelope = json.loads(sig_path.read_text())
        manifest, kid = envelope["manifest"], envelope["key_id"]
        signature = base64.b64decode(envelope["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed signature file: {exc}") from None
    public = trusted.get(kid)
    if public is None:
        raise VerificationError(f"signed by untrusted key {kid}")
    try:
        public.verify(signature, canonical(manifest))
    except InvalidSignature:
        raise VerificationError("signature does not match the manifest") from None
    actual = manifest_of(folder, manifest["name"], manifest["version"])["files"]
    if actual != manifest["files"]:
        changed = sorted(set(actual.items()) ^ set(manifest["files"].items()))
        raise VerificationError(f"content differs from the signed manifest: {sorted({c[0] for c in changed})}")
    if expect_name is not None and manifest["name"] != expect_name:
        raise VerificationError(f"signature is for {manifest['name']!r}, not {expect_name!r}")
    return Verified(manifest["name"], manifest["version"], kid)


def load_verified(folder: Path, trusted: dict[str, Ed25519PublicKey], expect_name: str) -> dict[str, Any]:
    """The only way the serving code gets weights: verify first, then a format with no code path."""
    from safetensors.torch import load_file

    verify(folder, trusted, expect_name)
    return load_file(str(folder / "model.safetensors"))
