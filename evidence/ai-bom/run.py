"""AI bill of materials: a CycloneDX 1.6 SBOM of this module's environment and of the model's
lineage (model hash, training-data hash, code hash and commit), generated, validated against
the CycloneDX schema, and then used: to catch a swapped model or dataset and a drifted
environment.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import importlib.metadata
import json
import shutil
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import bom
from fmbuild.evidence import kit

run = kit.start(__file__)
FRAMEWORKS = ["scikit-learn", "numpy", "safetensors"]

work = run.out / "work"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the training run whose lineage the BOM records ------------------------------------------
data = load_breast_cancer()
data_path = work / "breast-cancer.csv"
with data_path.open("w", newline="") as fh:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow([*data.feature_names, "target"])
    writer.writerows([*map(repr, row), int(t)] for row, t in zip(data.data.tolist(), data.target))
X_tr, X_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.3, random_state=run.seed,
                                          stratify=data.target)
scaler = StandardScaler().fit(X_tr)
clf = LogisticRegression(max_iter=500, C=1.0).fit(scaler.transform(X_tr), y_tr)
accuracy = float(clf.score(scaler.transform(X_te), y_te))
model_path = work / "model.safetensors"
# safetensors stores raw buffers, so every array is made C-contiguous first
save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in
           {"coef": clf.coef_, "intercept": clf.intercept_, "scaler_mean": scaler.mean_,
            "scaler_scale": scaler.scale_}.items()}, str(model_path))
run.metric("model.accuracy", accuracy)

commit, commit_source = bom.code_commit(Path(__file__).resolve().parent)
lineage = bom.Lineage(
    model_path=model_path, model_sha256=sha256(model_path),
    data_name="sklearn-breast-cancer", data_sha256=sha256(data_path), data_rows=len(data.target),
    code_path=Path(__file__).resolve(), code_sha256=sha256(Path(__file__).resolve()),
    commit=commit, commit_source=commit_source,
    training={"algorithm": "LogisticRegression", "C": "1.0", "seed": str(run.seed), "test_size": "0.3"},
)
run.log("lineage.recorded", model_sha256=lineage.model_sha256, data_sha256=lineage.data_sha256,
        code_sha256=lineage.code_sha256, commit=commit, commit_source=commit_source)

# --- generate and validate -------------------------------------------------------------------
t0 = time.perf_counter()
document, refs = bom.build(lineage, FRAMEWORKS)
text = bom.to_json(document)
run.metric("bom.generation_ms", 1000 * (time.perf_counter() - t0))
bom_path = run.artifact("ai-bom.cdx.json")
bom_path.write_text(text)
t0 = time.perf_counter()
error = bom.validate(text)
run.metric("bom.validation_ms", 1000 * (time.perf_counter() - t0))
doc = json.loads(text)
types = [c["type"] for c in doc["components"]]
run.metric("bom.valid", error is None)
run.metric("bom.spec_version", doc["specVersion"])
run.metric("bom.libraries", types.count("library"))
run.metric("bom.components", len(doc["components"]) + 1)
run.metric("bom.has_model_component", doc["metadata"]["component"]["type"] == "machine-learning-model")
run.metric("bom.has_data_component", "data" in types)
model_deps = next(d for d in doc["dependencies"] if d["ref"] == refs["model"])["dependsOn"]
run.metric("bom.model_depends_on_data", refs["data"] in model_deps)
run.metric("bom.model_depends_on_code", refs["code"] in model_deps)
run.metric("lineage.commit_source", commit_source)
run.metric("lineage.commit_recorded", commit != "unknown")
run.log("bom.validated", valid=error is None, error=error, spec=doc["specVersion"],
        components=run.metrics["bom"]["components"], path=str(bom_path.relative_to(run.out)))

# The validator must be able to say no: documents broken the ways hand-edited BOMs break.
broken_cases = {}
bad = copy.deepcopy(doc)
bad["metadata"]["component"]["type"] = "ml-model"
broken_cases["unknown_component_type"] = bad
bad = copy.deepcopy(doc)
bad["metadata"]["component"]["hashes"][0]["content"] = "not-a-sha256"
broken_cases["malformed_hash"] = bad
bad = copy.deepcopy(doc)
del bad["components"][0]["name"]
broken_cases["component_without_name"] = bad
bad = copy.deepcopy(doc)
bad["specVersion"] = 1.6
broken_cases["spec_version_not_string"] = bad
rejected = 0
for name, broken in broken_cases.items():
    message = bom.validate(json.dumps(broken))
    rejected += message is not None
    run.log("bom.negative_control", case=name, rejected=message is not None, message=(message or "")[:160])
run.metric("validator.broken_rejection_rate", rejected / len(broken_cases))

# --- using the BOM: does what is deployed match what it lists? --------------------------------
recorded = bom.hashes_by_ref(text)


def lineage_matches(model: Path, dataset: Path) -> dict[str, bool]:
    return {"model": recorded[refs["model"]] == sha256(model), "data": recorded[refs["data"]] == sha256(dataset)}


genuine = lineage_matches(model_path, data_path)
swapped_model = work / "deployed-model.safetensors"
weights = bytearray(model_path.read_bytes())
weights[-1] ^= 0x01  # the last byte of the last stored float
swapped_model.write_bytes(bytes(weights))
changed_data = work / "retrain-data.csv"
changed_data.write_text(data_path.read_text().replace(",1\n", ",0\n", 5))
checks = {
    "genuine": genuine["model"] and genuine["data"],
    "swapped_model_detected": not lineage_matches(swapped_model, data_path)["model"],
    "changed_data_detected": not lineage_matches(model_path, changed_data)["data"],
}
for name, value in checks.items():
    run.metric(f"lineage.{name}", value)
run.log("lineage.checked", **checks)

# --- using the BOM: has the environment drifted since it was written? -------------------------
live = {bom.normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
        if d.metadata["Name"]}


def drift(components: list[dict]) -> list[str]:
    return sorted(c["name"] for c in components if c["type"] == "library" and live.get(bom.normalize(c["name"])) != c["version"])


run.metric("environment.drift_now", len(drift(doc["components"])))
drifted = copy.deepcopy(doc["components"])
target = next(c for c in drifted if c["name"].lower() == "scikit-learn")
target["version"] = "1.0.2"  # the BOM of an older training environment
found = drift(drifted)
run.metric("environment.drift_detected", found == [target["name"]])
run.log("environment.drift", now=drift(doc["components"]), simulated=found)
frameworks = {c["name"].lower(): c["version"] for c in doc["components"] if c["name"].lower() in FRAMEWORKS}
run.log("bom.frameworks", **frameworks)

shutil.rmtree(work, ignore_errors=True)  # the BOM stays; the model and data copies are reproducible
run.finish()
