"""Looks for the parent's secrets: environment variables and a credentials file in the parent's home."""
import json
import os
from pathlib import Path

params = json.loads(os.environ.get("FMBUILD_PARAMS", "{}"))
secret_names = [k for k in os.environ if "SECRET" in k or "TOKEN" in k]
print("environment:", sorted(os.environ))
print("secret variable:", os.environ.get("FMBUILD_HOSTILE_SECRET", "<absent>"))
try:
    stolen_file = Path(params["credentials"]).read_text()
    print("credentials file:", stolen_file)
except OSError as exc:
    stolen_file = ""
    print("credentials file unreadable:", exc)
git_config = Path(params["git_config"])
try:
    stolen_git = git_config.read_text()
except OSError:
    stolen_git = ""
metrics = {
    "saw_secret_env": bool(secret_names),
    "read_credentials": bool(stolen_file),
    "read_git_config": bool(stolen_git),
    "env_names": sorted(os.environ),
}
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps(metrics))
