"""The acceptance bar for the content: `fmbuild check` finds no error in the Field Manual itself."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_projects_own_vault_is_clean(fmbuild) -> None:
    """`fmbuild check` passes on the Field Manual itself (the acceptance bar for the content)."""
    root = Path(__file__).resolve().parents[1]
    result = fmbuild("check", "--format", "json", "--no-cache", cwd=root)
    found = [d for d in json.loads(result.stdout) if d["severity"] == "error"]
    assert found == [], "\n".join(f"{d['path']}:{d['line']}: {d['code']} {d['message']}" for d in found)
