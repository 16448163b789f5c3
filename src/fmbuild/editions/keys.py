"""`editions/KEYS`: the Ed25519 public keys the project trusts to sign its Editions.

    # who holds it, since when
    ed25519:Base64OfTheRaw32ByteKey=  editor 2026

One key a line (`#` starts a comment; text after the key is a label). `fmbuild edition verify`
without `--pubkey` accepts only an Edition signed by one of these, so an unsigned or re-signed
Edition fails by default; the file is committed, so adding a key is a reviewed change.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fmbuild.editions.errors import EditionError
from fmbuild.editions.store import EDITIONS_DIR, KEYS_FILE

PREFIX = "ed25519:"
MAX_KEYS_BYTES = 64 * 1024


def key_line(public: Ed25519PublicKey, label: str = "") -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{PREFIX}{base64.b64encode(raw).decode()}" + (f"  {label}" if label else "")


def keys_path(editions_root: Path) -> Path:
    return editions_root / KEYS_FILE


def pinned_keys(editions_root: Path) -> list[Ed25519PublicKey]:
    """The keys `editions/KEYS` pins (none when the file is absent); a bad line is an error."""
    path = keys_path(editions_root)
    if not path.exists():
        return []
    shown = f"{EDITIONS_DIR}/{KEYS_FILE}"
    try:
        if path.is_symlink() or not path.is_file():
            raise EditionError(f"{shown}: not a plain file")
        data = path.read_bytes()
    except OSError as exc:
        raise EditionError(f"{shown}: cannot be read: {exc.strerror}") from None
    if len(data) > MAX_KEYS_BYTES:
        raise EditionError(f"{shown}: {len(data)} bytes; a keys file is a few lines (at most {MAX_KEYS_BYTES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditionError(f"{shown}: not UTF-8 text") from None
    found: list[Ed25519PublicKey] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        token = entry.split()[0]
        if not token.startswith(PREFIX):
            raise EditionError(f"{shown}:{number}: expected '{PREFIX}<base64 public key>' (fmbuild edition keygen prints it)")
        try:
            raw = base64.b64decode(token[len(PREFIX):], validate=True)
            found.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            raise EditionError(f"{shown}:{number}: not a 32-byte Ed25519 public key in base64") from None
    return found


def pin(editions_root: Path, public: Ed25519PublicKey, label: str) -> Path:
    """Add `public` to `editions/KEYS` (created if absent); the file's other lines stay as written."""
    path = keys_path(editions_root)
    line = key_line(public, label)
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if any(existing.split("#", 1)[0].split()[:1] == [line.split()[0]] for existing in current.splitlines()):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        if current and not current.endswith("\n"):
            handle.write("\n")
        handle.write(line + "\n")
    return path
