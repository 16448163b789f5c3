"""Import an evidence module's helper files by their plain names in a test, without leaking them.

Modules are self-contained folders whose files import each other by plain name (`gate`, `tools`,
`servers`, ...); several folders use the same names. A test imports the files it needs with the
folder on `sys.path`, then every module loaded from that folder is forgotten again, so another
test's `tools` is never this folder's `tools`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

EVIDENCE = Path(__file__).resolve().parents[1] / "evidence"


def load(folder: str, *names: str) -> dict[str, ModuleType]:
    path = EVIDENCE / folder
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, str(path))
    try:
        return {n: importlib.import_module(n) for n in names}
    finally:
        sys.path.remove(str(path))
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            if origin and Path(origin).resolve().parent == path.resolve():
                del sys.modules[name]
        sys.modules.update(saved)
