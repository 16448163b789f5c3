"""Hides behind children: one ordinary child and one daemon that left the session, all sleeping."""
import json
import os
import subprocess
import sys
import time

params = json.loads(os.environ.get("FMBUILD_PARAMS", "{}"))
marker = params.get("marker", "fmbuild-sleeper")
subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(3600)  # {marker}-child"])
if params.get("daemon", True) and os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", f"import time; time.sleep(3600)  # {marker}-daemon"])
    os._exit(0)
print("children started; sleeping forever", flush=True)
while True:
    time.sleep(1)
