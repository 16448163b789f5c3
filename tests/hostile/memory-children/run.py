"""Four children that each stay under the per-process limit but together go over the run's."""
import json
import os
import time
from pathlib import Path

params = json.loads(os.environ.get("FMBUILD_PARAMS", "{}"))
each = int(params.get("each_mb", 300)) * 1024 * 1024
children = []
for _ in range(int(params.get("children", 4))):
    pid = os.fork()
    if pid == 0:
        block = b"\x01" * each  # written, so resident (a calloc'd block would not be)
        time.sleep(5)
        os._exit(0 if block else 1)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"exit_codes": codes}))
