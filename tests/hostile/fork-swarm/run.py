"""Forks sleeping children until the system says no (or 1000 of them), then exits, leaving them behind."""
import json
import os
import time
from pathlib import Path

out = Path(os.environ["FMBUILD_OUT"])
spawned = 0
refused = ""
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = str(exc)
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    spawned += 1
print("spawned", spawned, "refused:", refused)
(out / "metrics.json").write_text(json.dumps({"spawned": spawned, "refused": bool(refused)}))
