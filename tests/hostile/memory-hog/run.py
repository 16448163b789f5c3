"""Allocates far more memory than the run may have (8 GiB, touched page by page)."""
import json
import os
from pathlib import Path

chunks = []
for i in range(32):
    chunks.append(bytearray(256 * 1024 * 1024))
    print("allocated", (i + 1) * 256, "MiB", flush=True)
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"allocated_mb": 8192}))
