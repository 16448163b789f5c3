"""Declares a GPU; records the device the runner gave it (never touches a real GPU)."""
import json
import os
import time
from pathlib import Path

out = Path(os.environ["FMBUILD_OUT"])
start = time.time()
time.sleep(json.loads(os.environ.get("FMBUILD_PARAMS", "{}")).get("sleep", 0.3))
(out / "metrics.json").write_text(json.dumps({"device": os.environ["FMBUILD_DEVICE"], "start": start, "end": time.time()}))
