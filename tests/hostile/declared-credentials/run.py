"""Declares credential variables in its own module.toml and reports what it received."""
import json
import os
from pathlib import Path

got = {}
for name in ("AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "FMBUILD_EXTRA_DATA"):
    value = os.environ.get(name, "")
    try:
        content = Path(value).read_text() if value else ""
    except OSError:
        content = ""
    got[name] = {"set": bool(value), "read": bool(content)}
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"got": got}))
