"""Dataset integrity and provenance: a sha256 manifest of the training data, checked before every
training run, and what it catches.

1. Write scikit-learn's digits training split as CSV shards with a `sha256sum` manifest; pin the
   manifest's own digest (as a training config or a signed release would).
2. Tamper with copies of the data in the ways poisoning and accidents arrive (label flips,
   appended rows, an added shard, a deleted shard, one changed byte, line endings, and data and
   manifest rewritten together) and run both gates: `sha256sum -c` and the full gate.
3. Train on each copy anyway, to measure what the gate prevented (accuracy and the recall of the
   class the poisoning targets); run the gates on untouched copies for false alarms.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import train_test_split

import gate
from fmbuild.evidence import kit

run = kit.start(__file__)
SHARDS = 5
CLEAN_REPEATS = run.pick(full=20, smoke=3)
SOURCE, TARGET = 1, 7  # the poisoning relabels ones as sevens
rng = np.random.default_rng(run.seed)

root = run.out / "work"
shutil.rmtree(root, ignore_errors=True)
root.mkdir(parents=True)

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X.astype(int), y, test_size=0.3, random_state=run.seed, stratify=y)


def write_shards(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(len(y_tr)), SHARDS)):
        with (folder / f"shard-{i:02d}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([f"p{j}" for j in range(64)] + ["label"])
            writer.writerows([*X_tr[k], y_tr[k]] for k in idx)


def read_shards(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """What the training job does: read every CSV in the folder."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="") as fh:
            rows += [list(map(int, r)) for r in list(csv.reader(fh))[1:]]
    data = np.array(rows)
    return data[:, :64], data[:, 64]


def train_and_score(folder: Path) -> tuple[float, float]:
    features, labels = read_shards(folder)
    model = RidgeClassifier(alpha=1.0).fit(features / 16.0, labels)
    pred = model.predict(X_te / 16.0)
    return float((pred == y_te).mean()), float((pred[y_te == SOURCE] == SOURCE).mean())


golden = root / "golden"
write_shards(golden)
manifest = root / "golden.sha256"
pinned = gate.write_manifest(golden, manifest)
run.log("manifest.written", files=SHARDS, manifest_sha256=pinned)
clean_accuracy, clean_recall = train_and_score(golden)
run.metric("clean.accuracy", clean_accuracy)
run.metric(f"clean.recall_class_{SOURCE}", clean_recall)


def rewrite_rows(path: Path, change: Callable[[list[list[str]]], list[list[str]]]) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [rows[0], *change(rows[1:])]
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def flip_labels(rows: list[list[str]]) -> list[list[str]]:
    return [r[:-1] + [str(TARGET)] if r[-1] == str(SOURCE) else r for r in rows]


def poison_rows(count: int) -> list[list[str]]:
    """Training ones from the same distribution, labelled as sevens."""
    ones = X_tr[y_tr == SOURCE]
    picks = ones[rng.integers(len(ones), size=count)]
    noisy = np.clip(picks + rng.integers(-1, 2, size=picks.shape), 0, 16)
    return [[*map(str, r), str(TARGET)] for r in noisy]


def case_label_flip(folder: Path, _manifest: Path) -> None:
    for i in range(3):
        rewrite_rows(folder / f"shard-{i:02d}.csv", flip_labels)


def case_appended_rows(folder: Path, _manifest: Path) -> None:
    rewrite_rows(folder / "shard-04.csv", lambda rows: rows + poison_rows(150))


def case_added_shard(folder: Path, _manifest: Path) -> None:
    with (folder / "shard-05.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([f"p{j}" for j in range(64)] + ["label"])
        writer.writerows(poison_rows(300))


def case_deleted_shard(folder: Path, _manifest: Path) -> None:
    (folder / "shard-02.csv").unlink()


def case_one_byte(folder: Path, _manifest: Path) -> None:
    path = folder / "shard-01.csv"
    data = bytearray(path.read_bytes())
    position = data.index(b"\n") + 1  # first pixel of the first row: '0' -> '1'
    data[position] = ord("1") if data[position] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


def case_line_endings(folder: Path, _manifest: Path) -> None:
    path = folder / "shard-03.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def case_manifest_rewritten(folder: Path, manifest_copy: Path) -> None:
    case_label_flip(folder, manifest_copy)
    gate.write_manifest(folder, manifest_copy)  # the attacker regenerates the manifest too


CASES: dict[str, Callable[[Path, Path], None]] = {
    "label_flip": case_label_flip,
    "appended_rows": case_appended_rows,
    "added_shard": case_added_shard,
    "deleted_shard": case_deleted_shard,
    "one_byte": case_one_byte,
    "line_endings": case_line_endings,
    "manifest_rewritten": case_manifest_rewritten,
}
caught = {"sha256sum": 0, "gate": 0}
rows_for_plot = []
for name, mutate in CASES.items():
    folder, manifest_copy = root / name, root / f"{name}.sha256"
    shutil.copytree(golden, folder)
    shutil.copyfile(manifest, manifest_copy)
    mutate(folder, manifest_copy)
    coreutils = gate.coreutils_check(folder, manifest_copy)
    full = gate.full_check(folder, manifest_copy, pinned)
    accuracy, recall = train_and_score(folder)
    caught["sha256sum"] += not coreutils.ok
    caught["gate"] += not full.ok
    run.metric(f"cases.{name}.sha256sum_caught", not coreutils.ok)
    run.metric(f"cases.{name}.gate_caught", not full.ok)
    run.metric(f"cases.{name}.accuracy_if_trained", accuracy)
    run.metric(f"cases.{name}.recall_class_{SOURCE}_if_trained", recall)
    rows_for_plot.append((name, not coreutils.ok, not full.ok, recall))
    run.log("gate.verdict", case=name, sha256sum_ok=coreutils.ok, gate_ok=full.ok,
            findings=full.findings[:4], sha256sum_output=coreutils.findings[:2],
            accuracy_if_trained=round(accuracy, 4), recall_if_trained=round(recall, 4))

run.metric("sha256sum.detection_rate", caught["sha256sum"] / len(CASES))
run.metric("gate.detection_rate", caught["gate"] / len(CASES))
run.metric("cases.count", len(CASES))
worst = min(CASES, key=lambda n: run.metrics["cases"][n][f"recall_class_{SOURCE}_if_trained"])
run.metric("poisoning.worst_case", worst)
run.metric(f"poisoning.worst_recall_class_{SOURCE}", run.metrics["cases"][worst][f"recall_class_{SOURCE}_if_trained"])
run.metric("poisoning.recall_drop", clean_recall - run.metrics["poisoning"][f"worst_recall_class_{SOURCE}"])

# False alarms: untouched data that was copied, moved, re-timestamped; both gates must pass it.
false_alarms = {"sha256sum": 0, "gate": 0}
for i in range(CLEAN_REPEATS):
    folder = root / f"clean-{i}"
    shutil.copytree(golden, folder)
    if i % 2:
        for path in folder.iterdir():
            os.utime(path, (1_000_000_000 + i, 1_000_000_000 + i))
    false_alarms["sha256sum"] += not gate.coreutils_check(folder, manifest).ok
    false_alarms["gate"] += not gate.full_check(folder, manifest, pinned).ok
    shutil.rmtree(folder)
run.metric("sha256sum.false_positive_rate", false_alarms["sha256sum"] / CLEAN_REPEATS)
run.metric("gate.false_positive_rate", false_alarms["gate"] / CLEAN_REPEATS)
run.metric("clean.checks", CLEAN_REPEATS)
run.log("gate.false_alarms", checks=CLEAN_REPEATS, **false_alarms)

fig, ax = plt.subplots(figsize=(8, 3.6))
names = [r[0] for r in rows_for_plot]
colors = ["#55a868" if r[2] else "#c44e52" for r in rows_for_plot]
ax.bar(names, [r[3] for r in rows_for_plot], color=colors)
ax.axhline(clean_recall, color="black", ls="--", lw=1, label=f"clean data: recall of class {SOURCE}")
for i, r in enumerate(rows_for_plot):
    ax.text(i, r[3] + 0.02, "sha256sum -c\n" + ("caught" if r[1] else "MISSED"), ha="center", fontsize=6.5,
            color="black" if r[1] else "#c44e52")
ax.set_ylim(0, 1.3)
ax.set_ylabel(f"recall of class {SOURCE} if trained anyway")
ax.tick_params(axis="x", rotation=30)
ax.legend(fontsize=8, loc="upper right")
ax.set_title("Each tampered copy (green: the full gate refused it)")
run.figure(fig, "tamper-cases-vs-gates")
shutil.copyfile(manifest, run.artifact("golden.sha256"))  # the manifest is the artifact; the shards are not kept
shutil.rmtree(root, ignore_errors=True)

run.finish()
