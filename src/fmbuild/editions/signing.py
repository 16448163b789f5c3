"""Ed25519 signatures over an Edition's manifest (the manifest lists every other file's hash).

Keys are PEM files: the private key PKCS#8, written 0600; the public key SubjectPublicKeyInfo,
written beside it as `<key>.pub`. A key path inside the repository is refused (unless forced):
a signing key that lands in a commit signs nothing any more.

`signature.json` in the Edition: `{"algorithm": "ed25519", "signed_file": "manifest.json",
"manifest_sha256", "key_id" (first 16 hex digits of the public key's sha256), "public_key"
(base64 of the raw 32 bytes), "signature" (base64)}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fmbuild.editions.errors import EditionError
from fmbuild.editions.store import MANIFEST

ALGORITHM = "ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def refuse_inside(path: Path, repository: Path | None, force: bool, what: str) -> None:
    if repository is None or force:
        return
    try:
        Path(os.path.abspath(path)).relative_to(repository)
    except ValueError:
        return
    raise EditionError(
        f"{path}: {what} inside the repository ({repository}); keep signing keys outside it "
        "(e.g. ~/.config/fmbuild/), or pass --force if you know it is ignored and never committed"
    )


def _create(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise EditionError(f"{path}: exists; a key is never overwritten (choose another path)") from None
    except OSError as exc:
        raise EditionError(f"{path}: cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it; never widened beyond `mode`


def generate(private_path: Path) -> tuple[Path, str]:
    """Write a new key pair; returns the public key's path and the key id."""
    public_path = private_path.with_name(private_path.name + ".pub")
    if public_path.exists():
        raise EditionError(f"{public_path}: exists; a key is never overwritten (choose another path)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _create(private_path, private_pem, 0o600)
    _create(public_path, public_pem, 0o644)
    return public_path, key_id(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EditionError(f"{path}: cannot read the signing key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise EditionError(f"{path}: not an unencrypted PEM private key ({str(exc).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EditionError(f"{path}: not an Ed25519 key (make one with: fmbuild edition keygen)")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EditionError(f"{path}: cannot read the public key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:  # a private key given where the public one was expected still names its public half
            return load_private(path).public_key()
        except EditionError:
            raise EditionError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EditionError(f"{path}: not an Ed25519 public key")
    return key


def loose_permissions(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def signature_document(key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    public = key.public_key()
    doc = {
        "algorithm": ALGORITHM,
        "signed_file": MANIFEST,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "key_id": key_id(public),
        "public_key": base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode(),
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    ok: bool
    key_id: str | None
    message: str


def check_signature(document: bytes, manifest: bytes, trusted: Ed25519PublicKey | Sequence[Ed25519PublicKey] | None,
                    trusted_as: str = "the given key") -> SignatureCheck:
    """The signature over `manifest`; with `trusted` keys, it must be by one of them."""
    keys = [] if trusted is None else [trusted] if isinstance(trusted, Ed25519PublicKey) else list(trusted)
    try:
        doc: Any = json.loads(document.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("algorithm") != ALGORITHM:
            raise ValueError("not an ed25519 signature document")
        raw = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return SignatureCheck(False, None, f"signature.json: unreadable ({exc})")
    kid = key_id(embedded)
    chosen = next((k for k in keys if key_id(k) == kid), None)
    if keys and chosen is None:
        ids = ", ".join(key_id(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        return SignatureCheck(False, kid, f"signature.json: signed by key {kid}, not by {trusted_as} {ids}")
    try:
        (chosen or embedded).verify(signature, manifest)
    except InvalidSignature:
        return SignatureCheck(False, kid, "manifest.json: does not match its signature (changed after signing)")
    return SignatureCheck(True, kid, f"signature by key {kid} is valid")
