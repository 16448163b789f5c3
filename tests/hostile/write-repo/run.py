"""Tries to write into its own module folder, the repository root, the interpreter and /usr."""
import json
import os
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
targets = {
    "module": here / "planted.txt",
    "repository": here.parent.parent / "planted.txt",
    "interpreter": Path(sys.prefix) / "planted.txt",
    "usr": Path("/usr/planted.txt"),
}
blocked = {}
for name, path in targets.items():
    try:
        path.write_text("planted by a hostile module\n")
        blocked[name] = False
        print("WROTE", path)
    except OSError as exc:
        blocked[name] = True
        print("blocked", name, exc)
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"blocked": blocked}))
