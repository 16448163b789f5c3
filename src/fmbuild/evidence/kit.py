"""A small helper for evidence module authors: record a metric, log a line, save a figure.

A module stays runnable with plain `python evidence/<module>/run.py`: without the runner,
output goes to `evidence/<module>/out/` (ignored by git), the device to `cpu`, the seed to 0.

    from fmbuild.evidence import kit

    run = kit.start(__file__)
    run.log("attack.start", epsilon=0.1)          # one JSON line on stdout and in log.jsonl
    run.metric("clean_accuracy", 0.97)            # dotted names nest: "fgsm.eps_0.1"
    run.figure(fig, "accuracy-vs-epsilon")         # PNG in the output folder
    run.finish()                                   # writes metrics.json

In a notebook, call `kit.start()` with no argument: the runner starts the kernel in the module
folder. `run.params` holds the module's `[params]` from `module.toml` (passed by the runner as
FMBUILD_PARAMS, read from the file when run standalone).

The runner sets FMBUILD_OUT, FMBUILD_DEVICE (cpu|cuda), FMBUILD_SEED and FMBUILD_SCALE
(full|smoke: smoke asks for a seconds-long run that exercises every code path, used by the
test suite; claims are only checked on full runs).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"


class Run:
    def __init__(self, module_file: str | os.PathLike[str] | None = None) -> None:
        module_dir = Path(module_file).resolve().parent if module_file else Path.cwd().resolve()
        self.module_dir = module_dir
        self.out = Path(os.environ.get("FMBUILD_OUT") or module_dir / "out")
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = os.environ.get("FMBUILD_DEVICE", "cpu")
        if self.device not in ("cpu", "cuda"):
            raise SystemExit(f"FMBUILD_DEVICE must be cpu or cuda, not {self.device!r}")
        self.seed = int(os.environ.get("FMBUILD_SEED", "0"))
        self.scale = os.environ.get("FMBUILD_SCALE", "full")
        if self.scale not in ("full", "smoke"):
            raise SystemExit(f"FMBUILD_SCALE must be full or smoke, not {self.scale!r}")
        self.params: dict[str, Any] = _params(module_dir)
        self.metrics: dict[str, Any] = {}
        self._log = (self.out / LOG_FILE).open("a", encoding="utf-8")
        self._t0 = time.perf_counter()
        seed_everything(self.seed)
        self.log("run.start", module=module_dir.name, device=self.device, seed=self.seed, scale=self.scale)

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"

    def pick(self, full: Any, smoke: Any) -> Any:
        """`full` on a real run, `smoke` on the test suite's quick run."""
        return smoke if self.smoke else full

    def torch_device(self) -> Any:
        """The torch device for this run; says in the log when the GPU is used."""
        import torch

        _seed_torch(self.seed)
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise SystemExit("FMBUILD_DEVICE=cuda but torch sees no CUDA device")
            self.log("device.gpu", name=torch.cuda.get_device_name(0))
            return torch.device("cuda")
        return torch.device("cpu")

    def log(self, event: str, **fields: Any) -> None:
        record = {"t": round(time.perf_counter() - self._t0, 3), "event": event, **fields}
        line = json.dumps(record, default=_jsonable, sort_keys=False)
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def metric(self, name: str, value: Any) -> Any:
        value = _jsonable(value)
        node = self.metrics
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"metric {name!r}: {part!r} already holds a value")
        node[leaf] = value
        return value

    def artifact(self, name: str) -> Path:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def figure(self, fig: Any, name: str) -> Path:
        path = self.artifact(name if name.endswith(".png") else f"{name}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except ImportError:  # pragma: no cover - a figure implies matplotlib
            pass
        return path

    def finish(self) -> Path:
        path = self.out / METRICS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.metrics, indent=2, sort_keys=True, default=_jsonable) + "\n")
        tmp.replace(path)
        self.log("run.finish", seconds=round(time.perf_counter() - self._t0, 2), metrics=len(self.metrics))
        self._log.close()
        return path


def start(module_file: str | os.PathLike[str] | None = None) -> Run:
    """Begin a run of the module whose `run.py` is `module_file` (pass `__file__`; nothing in a notebook)."""
    return Run(module_file)


def load_file(name: str, path: str | os.PathLike[str]) -> ModuleType:
    """Import the Python file at `path` as module `name`: code another module folder ships.

    List that file under `inputs` in module.toml so the cache key covers it.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as {name!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def _params(module_dir: Path) -> dict[str, Any]:
    text = os.environ.get("FMBUILD_PARAMS")
    if text:
        try:
            value = json.loads(text)
        except ValueError:
            raise SystemExit("FMBUILD_PARAMS is not valid JSON") from None
        return value if isinstance(value, dict) else {}
    toml_path = module_dir / "module.toml"
    if not toml_path.is_file():
        return {}
    import tomllib

    try:
        params = tomllib.loads(toml_path.read_text(encoding="utf-8")).get("params", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"module.toml: {exc}") from None
    return params if isinstance(params, dict) else {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    # torch is seeded when the module has imported it (import it before `kit.start`, or call
    # `run.torch_device()`, which seeds it too): importing torch here would add seconds to every
    # module that never uses it.
    if "torch" in sys.modules:
        _seed_torch(seed)


def _seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _jsonable(value: Any) -> Any:
    """numpy / torch scalars and arrays to plain JSON values; NaN and inf are refused."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    elif hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric value {value!r} is not a finite number")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
