"""Reads the model file the runner binds read-only: its size, and that it cannot be written."""
import json
import os
from pathlib import Path

model = Path(os.environ["FMBUILD_TEST_MODEL"])
try:
    model.open("ab").close()
    writable = True
except OSError:
    writable = False
out = Path(os.environ["FMBUILD_OUT"])
(out / "metrics.json").write_text(json.dumps({"model_bytes": model.stat().st_size, "model_writable": writable}))
