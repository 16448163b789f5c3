"""Prints 200 MB to stdout, then writes its metrics."""
import json
import os
import sys
from pathlib import Path

line = ("x" * 1023 + "\n").encode()
block = line * 1024  # 1 MiB
for _ in range(200):
    sys.stdout.buffer.write(block)
sys.stdout.buffer.write(b"FLOOD-END\n")
sys.stdout.flush()
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"printed_mb": 200}))
