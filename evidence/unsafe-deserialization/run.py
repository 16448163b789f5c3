"""Unsafe model deserialization: which loaders run a payload hidden in a model file, which
refuse it, what each format costs, and what three real scanners catch and miss.

1. Train a small MLP on scikit-learn's digits and save the same weights in six formats
   (pickle, torch.save, joblib, safetensors, ONNX, TorchScript): size, load time, round trip.
2. For every loader, build a model file whose pickle carries a canary payload naming that
   loader, load it, and see whether the canary file appeared (the payload ran) or the loader
   refused the file.
3. Build a corpus of benign model files and malicious ones (textbook payloads and evasions
   through callables the scanners allow), scan it with picklescan, modelscan and fickling,
   and load every evasion a deny-list scanner called clean to show that it executes.

Every canary writes only under the run's output folder.
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import joblib
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import payloads
import scanners
from fmbuild.evidence import kit

run = kit.start(__file__)
# One thread: on small models a second intra-op thread only adds contention (18x slower per step
# measured on a loaded 2-core runner), and verify may run several modules side by side.
torch.set_num_threads(1)
EPOCHS = run.pick(full=8, smoke=2)
LOAD_REPEATS = run.pick(full=25, smoke=3)
HIDDEN = 512

work = run.out / "work"
canaries = run.out / "canary"
scratch = run.out / "tmp"
for folder in (work, canaries, scratch):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
# Whatever temporary files the loaders and scanners make land inside the run's folder too.
tempfile.tempdir = str(scratch)


# --- 1. one model, six formats -------------------------------------------------------------

def train_model() -> tuple[torch.nn.Module, torch.Tensor, float]:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=run.seed, stratify=y)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(X_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(run.seed)
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    x_test = torch.from_numpy(X_te)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1).numpy() == y_te).mean()
    return model, x_test, float(accuracy)


model, x_test, accuracy = train_model()
run.metric("model.test_accuracy", accuracy)
run.metric("model.parameters", sum(p.numel() for p in model.parameters()))
run.log("model.trained", epochs=EPOCHS, test_accuracy=round(accuracy, 4))
with torch.no_grad():
    reference = model(x_test)
state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def fresh_model() -> torch.nn.Module:
    net = torch.nn.Sequential(
        torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 10),
    )
    return net.eval()


def from_state(loaded: dict[str, Any]) -> torch.Tensor:
    net = fresh_model()
    net.load_state_dict({k: torch.as_tensor(v) for k, v in loaded.items()})
    with torch.no_grad():
        return net(x_test)


@dataclass
class Format:
    save: Callable[[Path], None]
    load: Callable[[Path], Any]
    predict: Callable[[Any], torch.Tensor]
    suffix: str


def _onnx_save(path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(model, (x_test[:1],), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}})


def _onnx_load(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _safetensors_save(path: Path) -> None:
    from safetensors.torch import save_file

    save_file(state, str(path))


def _safetensors_load(path: Path) -> Any:
    from safetensors.torch import load_file

    return load_file(str(path))


FORMATS: dict[str, Format] = {
    "pickle": Format(lambda p: p.write_bytes(pickle.dumps(state, protocol=4)),
                     lambda p: pickle.loads(p.read_bytes()), from_state, ".pkl"),
    "torch_save": Format(lambda p: torch.save(state, p), lambda p: torch.load(p, weights_only=True),
                         from_state, ".pt"),
    "joblib": Format(lambda p: joblib.dump({k: v.numpy() for k, v in state.items()}, p), joblib.load,
                     from_state, ".joblib"),
    "safetensors": Format(_safetensors_save, _safetensors_load, from_state, ".safetensors"),
    "onnx": Format(_onnx_save, _onnx_load,
                   lambda s: torch.from_numpy(s.run(None, {"x": x_test.numpy()})[0]), ".onnx"),
    "torchscript": Format(lambda p: torch.jit.trace(model, x_test[:1]).save(str(p)), torch.jit.load,
                          lambda m: m(x_test).detach(), ".ts"),
}

format_rows = []
for name, fmt in FORMATS.items():
    path = work / f"model{fmt.suffix}"
    fmt.save(path)
    times = []
    for _ in range(LOAD_REPEATS):
        t0 = time.perf_counter()
        loaded = fmt.load(path)
        times.append(time.perf_counter() - t0)
    same = bool(torch.allclose(fmt.predict(loaded), reference, atol=1e-4))
    row = {"bytes": path.stat().st_size, "load_ms": 1000 * statistics.median(times), "roundtrip_equal": same}
    for key, value in row.items():
        run.metric(f"formats.{name}.{key}", value)
    format_rows.append((name, row))
    run.log("format.measured", format=name, **row)

pickle_bytes = dict(format_rows)["pickle"]["bytes"]
run.metric("formats.safetensors.size_vs_pickle", dict(format_rows)["safetensors"]["bytes"] / pickle_bytes)


# --- 2. which loaders run the payload --------------------------------------------------------

def marker(who: str) -> Path:
    return canaries / f"canary-{who}.txt"


def malicious_torch(who: str) -> Path:
    path = work / f"mal-{who}.pt"
    torch.save(payloads.with_weights(state, payloads.exec_payload(marker(who), who)), path)
    return path


def malicious_pickle(who: str) -> Path:
    path = work / f"mal-{who}.pkl"
    path.write_bytes(pickle.dumps(payloads.with_weights(state, payloads.exec_payload(marker(who), who)), protocol=4))
    return path


def malicious_joblib(who: str) -> Path:
    path = work / f"mal-{who}.joblib"
    joblib.dump(payloads.with_weights({k: v.numpy() for k, v in state.items()},
                                      payloads.exec_payload(marker(who), who)), path)
    return path


def malicious_npy(who: str) -> Path:
    path = work / f"mal-{who}.npy"
    np.save(path, np.array([payloads.exec_payload(marker(who), who)], dtype=object), allow_pickle=True)
    return path


def renamed(who: str, suffix: str) -> Path:
    """The attacker's best move against a format with no code path: the same pickle, renamed."""
    path = work / f"mal-{who}{suffix}"
    shutil.copy(malicious_torch(who), path)
    return path


def _onnx_parse(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


# name -> (build the malicious file, load it, the benign file the same loader must accept)
LOADERS: dict[str, tuple[Callable[[str], Path], Callable[[Path], Any], Path | None]] = {
    "pickle_load": (malicious_pickle, lambda p: pickle.loads(p.read_bytes()), work / "model.pkl"),
    "torch_load_weights_only_false": (malicious_torch, lambda p: torch.load(p, weights_only=False), work / "model.pt"),
    "joblib_load": (malicious_joblib, joblib.load, work / "model.joblib"),
    "numpy_load_allow_pickle": (malicious_npy, lambda p: np.load(p, allow_pickle=True), None),
    "torch_load_weights_only_true": (malicious_torch, lambda p: torch.load(p, weights_only=True), work / "model.pt"),
    "torch_load_default": (malicious_torch, torch.load, work / "model.pt"),
    "numpy_load_default": (malicious_npy, np.load, None),
    "safetensors": (lambda w: renamed(w, ".safetensors"), _safetensors_load, work / "model.safetensors"),
    "onnx": (lambda w: renamed(w, ".onnx"), _onnx_parse, work / "model.onnx"),
    "onnxruntime": (lambda w: renamed(w, ".onnx"), _onnx_load, work / "model.onnx"),
    "torchscript": (lambda w: renamed(w, ".ts"), torch.jit.load, work / "model.ts"),
}

executing, refusing = [], []
for who, (build, load, benign) in LOADERS.items():
    path = build(who)
    error = ""
    try:
        load(path)
    except Exception as exc:  # a refusal is the outcome being measured
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    executed = marker(who).exists()
    loads_benign = True
    if benign is not None:
        try:
            load(benign)
        except Exception:
            loads_benign = False
    run.metric(f"loaders.{who}.executed", executed)
    run.metric(f"loaders.{who}.refused", bool(error) and not executed)
    run.metric(f"loaders.{who}.loads_benign", loads_benign)
    (executing if executed else refusing).append(who)
    run.log("loader.result", loader=who, payload_executed=executed, refused=bool(error), error=error or None)

SAFE_LOADERS = ["torch_load_weights_only_true", "torch_load_default", "numpy_load_default", "safetensors",
                "onnx", "onnxruntime", "torchscript"]
UNSAFE_LOADERS = ["pickle_load", "torch_load_weights_only_false", "joblib_load", "numpy_load_allow_pickle"]
run.metric("loaders.unsafe_executed", sum(who in executing for who in UNSAFE_LOADERS))
run.metric("loaders.unsafe_total", len(UNSAFE_LOADERS))
run.metric("loaders.safe_executed", sum(who in executing for who in SAFE_LOADERS))
run.metric("loaders.safe_total", len(SAFE_LOADERS))


# --- 3. the scanners over a corpus -----------------------------------------------------------

corpus = run.out / "corpus"
shutil.rmtree(corpus, ignore_errors=True)
(corpus / "benign").mkdir(parents=True)
(corpus / "malicious").mkdir(parents=True)
sidecar = run.out / "sidecar"  # where a second-stage file waits; not part of what is scanned
shutil.rmtree(sidecar, ignore_errors=True)
sidecar.mkdir()
scan_canaries = run.out / "canary-scan"
shutil.rmtree(scan_canaries, ignore_errors=True)
scan_canaries.mkdir()

X_digits, y_digits = load_digits(return_X_y=True)
numpy_state = {k: v.numpy() for k, v in state.items()}
benign_builders: dict[str, Callable[[Path], None]] = {
    "state-dict.pt": lambda p: torch.save(state, p),
    "state-dict-legacy.pt": lambda p: torch.save(state, p, _use_new_zipfile_serialization=False),
    "full-module.pt": lambda p: torch.save(model, p),
    "arrays.pkl": lambda p: p.write_bytes(pickle.dumps(numpy_state, protocol=4)),
    "logreg.pkl": lambda p: p.write_bytes(pickle.dumps(LogisticRegression(max_iter=100).fit(X_digits[:400] / 16,
                                                                                            y_digits[:400]))),
    "forest.joblib": lambda p: joblib.dump(RandomForestClassifier(n_estimators=5, random_state=run.seed)
                                           .fit(X_digits, y_digits), p),
    "weights.npy": lambda p: np.save(p, numpy_state["0.weight"]),
    "weights.safetensors": lambda p: shutil.copy(work / "model.safetensors", p),
    "model.onnx": lambda p: shutil.copy(work / "model.onnx", p),
    "model.ts": lambda p: shutil.copy(work / "model.ts", p),
}


@dataclass
class Sample:
    path: Path
    kind: str  # classic | evasion
    loader: Callable[[Path], Any]
    marker: Path


def _torch_unsafe(p: Path) -> Any:
    return torch.load(p, weights_only=False)


def _pickle_load(p: Path) -> Any:
    return pickle.loads(p.read_bytes())


def build_malicious() -> list[Sample]:
    samples: list[Sample] = []

    def add(name: str, kind: str, loader: Callable[[Path], Any], write: Callable[[Path, Path], None]) -> None:
        path, mark = corpus / "malicious" / name, scan_canaries / f"canary-{name}.txt"
        write(path, mark)
        samples.append(Sample(path, kind, loader, mark))

    def pkl(payload: Callable[[Path], payloads.Reduce]) -> Callable[[Path, Path], None]:
        return lambda p, m: p.write_bytes(pickle.dumps(payloads.with_weights(numpy_state, payload(m)), protocol=4))

    def pt(payload: Callable[[Path], payloads.Reduce], legacy: bool = False) -> Callable[[Path, Path], None]:
        return lambda p, m: torch.save(payloads.with_weights(state, payload(m)), p,
                                       _use_new_zipfile_serialization=not legacy)

    add("exec.pkl", "classic", _pickle_load, pkl(lambda m: payloads.exec_payload(m, "exec.pkl")))
    add("eval.pkl", "classic", _pickle_load, pkl(lambda m: payloads.eval_payload(m, "eval.pkl")))
    add("system.pkl", "classic", _pickle_load, pkl(lambda m: payloads.system_payload(m, "system.pkl")))
    add("exec.pt", "classic", _torch_unsafe, pt(lambda m: payloads.exec_payload(m, "exec.pt")))
    add("system.pt", "classic", _torch_unsafe, pt(lambda m: payloads.system_payload(m, "system.pt")))
    add("exec-legacy.pt", "classic", _torch_unsafe, pt(lambda m: payloads.exec_payload(m, "exec-legacy.pt"), True))
    add("exec.joblib", "classic", joblib.load,
        lambda p, m: joblib.dump(payloads.with_weights(numpy_state, payloads.exec_payload(m, "exec.joblib")), p))
    add("exec.npy", "classic", lambda p: np.load(p, allow_pickle=True),
        lambda p, m: np.save(p, np.array([payloads.exec_payload(m, "exec.npy")], dtype=object), allow_pickle=True))
    # the same textbook pickle under a name a scanner may not route to its pickle scanner
    add("exec-renamed.msgpack", "evasion", _pickle_load,
        pkl(lambda m: payloads.exec_payload(m, "exec-renamed.msgpack")))
    add("exec-renamed.bin", "evasion", _torch_unsafe,
        pkl(lambda m: payloads.exec_payload(m, "exec-renamed.bin")))
    add("gzip-open.pkl", "evasion", _pickle_load, pkl(payloads.gzip_open_payload))
    add("gzip-open.pt", "evasion", _torch_unsafe, pt(payloads.gzip_open_payload))
    add("sqlite-connect.pkl", "evasion", _pickle_load, pkl(payloads.sqlite_connect_payload))
    add("codecs-open.pt", "evasion", _torch_unsafe, pt(payloads.codecs_open_payload))

    def second_stage(p: Path, m: Path) -> None:
        stage_two = sidecar / "tokenizer.cache"
        joblib.dump(payloads.exec_payload(m, "second-stage.pt"), stage_two)
        torch.save(payloads.with_weights(state, payloads.second_stage_payload(stage_two)), p)

    add("second-stage.pt", "evasion", _torch_unsafe, second_stage)
    return samples


for name, write in benign_builders.items():
    write(corpus / "benign" / name)
malicious = build_malicious()
benign_paths = sorted((corpus / "benign").iterdir())
run.metric("corpus.benign", len(benign_paths))
run.metric("corpus.malicious", len(malicious))
run.metric("corpus.evasions", sum(s.kind == "evasion" for s in malicious))
run.log("corpus.built", benign=len(benign_paths), malicious=len(malicious))

verdicts: dict[str, dict[str, scanners.Verdict]] = {name: {} for name in scanners.SCANNERS}
for scanner_name in scanners.SCANNERS:
    for path in benign_paths + [s.path for s in malicious]:
        verdict = scanners.scan(scanner_name, path)
        verdicts[scanner_name][f"{path.parent.name}/{path.name}"] = verdict
        run.log("scan.verdict", scanner=scanner_name, file=f"{path.parent.name}/{path.name}", status=verdict.status,
                detail=verdict.detail)
# Scanning must be static: a canary present now would mean a scanner ran a payload.
run.metric("scanners.payloads_executed_while_scanning", len(list(scan_canaries.iterdir())))

summary: dict[str, dict[str, float]] = {}
for scanner_name, by_file in verdicts.items():
    mal = [by_file[f"malicious/{s.path.name}"] for s in malicious]
    classic = [by_file[f"malicious/{s.path.name}"] for s in malicious if s.kind == "classic"]
    evasive = [by_file[f"malicious/{s.path.name}"] for s in malicious if s.kind == "evasion"]
    ben = [by_file[f"benign/{p.name}"] for p in benign_paths]
    stats = {
        "detection_rate": sum(v.flagged for v in mal) / len(mal),
        "false_positive_rate": sum(v.flagged for v in ben) / len(ben),
        "classic_detection_rate": sum(v.flagged for v in classic) / len(classic),
        "evasion_detection_rate": sum(v.flagged for v in evasive) / len(evasive),
        "malicious_called_clean": sum(v.status == "clean" for v in mal),
        "malicious_not_flagged": sum(not v.flagged for v in mal),
        "benign_errors_or_skips": sum(v.status in ("error", "skipped") for v in ben),
        # a file the scanner could not analyse: a gate that blocks on errors stops it, but that is
        # not a detection, and it blocks benign files of the same format just as well
        "malicious_errors_or_skips": sum(v.status in ("error", "skipped") for v in mal),
        "ms_per_file": 1000 * statistics.mean(v.seconds for v in by_file.values()),
    }
    summary[scanner_name] = stats
    for key, value in stats.items():
        run.metric(f"scanners.{scanner_name}.{key}", value)
    # Detection is a property of the scanner's version (its lists change), so the record keeps it.
    run.metric(f"scanners.{scanner_name}.version", importlib.metadata.version(scanner_name))
    run.metric(f"scanners.{scanner_name}.missed", [s.path.name for s in malicious
                                                   if not by_file[f"malicious/{s.path.name}"].flagged])
    run.log("scanner.summary", scanner=scanner_name, **{k: round(v, 3) for k, v in stats.items()})

# The anti-pattern measured: a file a deny-list scanner called clean is loaded, and runs.
executed_after_clean = []
for sample in malicious:
    clean_for = [n for n in ("picklescan", "modelscan") if verdicts[n][f"malicious/{sample.path.name}"].status == "clean"]
    if not clean_for:
        continue
    try:
        sample.loader(sample.path)
    except Exception as exc:
        run.log("evasion.load_failed", file=sample.path.name, error=f"{type(exc).__name__}: {exc}"[:160])
    if sample.marker.exists():
        executed_after_clean.append(sample.path.name)
        run.log("evasion.executed_after_clean_verdict", file=sample.path.name, clean_for=clean_for,
                marker=str(sample.marker.relative_to(run.out)))
run.metric("evasion.executed_after_clean_verdict", len(executed_after_clean))
run.metric("evasion.files", executed_after_clean)
run.metric("evasion.missed_by_every_scanner", sum(
    all(not verdicts[n][f"malicious/{s.path.name}"].flagged for n in scanners.SCANNERS) for s in malicious))
# all three scanners in a row, blocking on any flag: what the best a pipeline could do with them is
union_mal = [any(verdicts[n][f"malicious/{s.path.name}"].flagged for n in scanners.SCANNERS) for s in malicious]
union_ben = [any(verdicts[n][f"benign/{p.name}"].flagged for n in scanners.SCANNERS) for p in benign_paths]
run.metric("scanners.union_detection_rate", sum(union_mal) / len(union_mal))
run.metric("scanners.union_false_positive_rate", sum(union_ben) / len(union_ben))
# the loaders' results depend on torch's version: weights_only=True is bypassable before 2.6.0
# (CVE-2025-32434), so the record says which torch ran
run.metric("torch_version", torch.__version__)


# The verdict table is the artifact a reader wants; the model files themselves (a few MB, some of
# them live payloads) are not kept in the record.
table = {f"{p.parent.name}/{p.name}": {"bytes": p.stat().st_size,
                                        **{n: {"status": verdicts[n][f"{p.parent.name}/{p.name}"].status,
                                               "detail": verdicts[n][f"{p.parent.name}/{p.name}"].detail}
                                           for n in scanners.SCANNERS}}
         for p in benign_paths + [s.path for s in malicious]}
run.artifact("scan-verdicts.json").write_text(json.dumps(table, indent=2, sort_keys=True))
for folder in (work, corpus, sidecar, scratch):
    shutil.rmtree(folder, ignore_errors=True)


# --- plots ----------------------------------------------------------------------------------

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
names = [n for n, _ in format_rows]
ax1.bar(names, [r["bytes"] / 1024 for _, r in format_rows], color="#4c72b0")
ax1.set_ylabel("file size (KiB)")
ax2.bar(names, [r["load_ms"] for _, r in format_rows], color="#dd8452")
ax2.set_ylabel("median load time (ms)")
for ax in (ax1, ax2):
    ax.tick_params(axis="x", rotation=35)
fig.suptitle("The same MLP in six formats")
run.figure(fig, "format-size-and-load-time")

fig, ax = plt.subplots(figsize=(7, 3.6))
width = 0.27
xs = np.arange(len(summary))
for i, (label, key, color) in enumerate([("classic payloads flagged", "classic_detection_rate", "#4c72b0"),
                                         ("evasions flagged", "evasion_detection_rate", "#c44e52"),
                                         ("benign files flagged", "false_positive_rate", "#8c8c8c")]):
    ax.bar(xs + (i - 1) * width, [s[key] for s in summary.values()], width, label=label, color=color)
ax.set_xticks(xs, list(summary))
ax.set_ylim(0, 1.3)
ax.set_ylabel("fraction of files")
ax.legend(fontsize=8, loc="upper center", ncol=3)
ax.set_title("Scanner detection and false positives on the module's corpus")
run.figure(fig, "scanner-detection-vs-false-positives")

run.finish()
