"""Writes several files each under the per-file limit, into its output and its /tmp."""
import json
import os
from pathlib import Path

params = json.loads(os.environ.get("FMBUILD_PARAMS", "{}"))
out = Path(os.environ["FMBUILD_OUT"])
tmp = Path(os.environ.get("TMPDIR", "/tmp"))
size = int(params.get("each_mb", 40)) * 1024 * 1024
chunk = os.urandom(1 << 20)
written = 0
for i in range(int(params.get("files", 4))):
    folder = out if i % 2 == 0 else tmp
    with open(folder / f"fill-{i}.bin", "wb") as handle:
        for _ in range(size // len(chunk)):
            handle.write(chunk)
            written += len(chunk)
(out / "metrics.json").write_text(json.dumps({"written_mb": written // (1024 * 1024)}))
