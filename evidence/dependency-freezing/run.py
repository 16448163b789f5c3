"""Dependency freezing: what a floating requirement, a version pin and a hash pin each let
through, for a Python package and for a model download.

1. Packages: a genuine wheel of a small featurizer and an attacker's wheels (a higher version on
   the index, then the same version with different bytes, as from a compromised mirror). Install
   each way with the real pip, offline, into the run's folder; the attacker's code leaves a canary.
2. Models: a model hub on loopback. The attacker publishes a poisoned revision and moves `latest`,
   then moves the release tag the team pinned (`v1.0`) to the poisoned files. A tag or branch name
   is a pointer anyone with write access can move; a commit SHA is content-addressed and cannot be
   rewritten, so the risk is pinning the name instead of the SHA (or the file's digest). Clients that
   follow `latest`, pin the tag, or pin the tag and the file's sha256 download; the poisoned model's
   damage is measured.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load, save
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import train_test_split

import hub
import wheels
from fmbuild.evidence import kit

run = kit.start(__file__)
RELEASE_TAG = "v1.0"  # a name: the hub lets anyone with write access point it at other files
GENUINE_INSTALLS = run.pick(full=3, smoke=1)
GENUINE_DOWNLOADS = run.pick(full=50, smoke=5)
SOURCE, TARGET = 1, 7

work = run.out / "work"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
canaries = run.out / "canary"
shutil.rmtree(canaries, ignore_errors=True)
canaries.mkdir()

# --- 1. packages ----------------------------------------------------------------------------
GENUINE_SOURCE = 'TAG = "genuine"\n\ndef scale(x):\n    return [v / 16.0 for v in x]\n'


def attacker_source(marker: Path) -> str:
    # Runs at import time, as install-time and import-time malware does; only writes the marker.
    return (f"open({str(marker)!r}, 'w').write('imported attacker code')\n"
            'TAG = "tampered"\n\ndef scale(x):\n    return [v / 16.0 for v in x]\n')


genuine_index, newer_index, mirror_index = work / "index-genuine", work / "index-newer", work / "index-mirror"
genuine_wheel = wheels.build_wheel(genuine_index, "fm-featurizer", "1.0.0", GENUINE_SOURCE)
shutil.copytree(genuine_index, newer_index)
wheels.build_wheel(newer_index, "fm-featurizer", "1.0.1", attacker_source(canaries / "canary-floating.txt"))
wheels.build_wheel(mirror_index, "fm-featurizer", "1.0.0", attacker_source(canaries / "canary-version-pin.txt"))
genuine_hash = wheels.sha256(genuine_wheel)
lock = work / "requirements.lock"
lock.write_text(f"fm-featurizer==1.0.0 --hash=sha256:{genuine_hash}\n")
run.metric("packages.locked_sha256", genuine_hash)
run.log("lock.written", requirement="fm-featurizer==1.0.0", sha256=genuine_hash)

pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
(work / "tmp").mkdir()
# pip unpacks and builds in TMPDIR and may write under HOME: both point inside the run's folder.
pip_env.update(HOME=str(work / "home"), TMPDIR=str(work / "tmp"), PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")


def pip_install(index: Path, target: Path, *requirement: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(index), "--target", str(target),
           "--no-cache-dir", "--no-deps", "--quiet", *requirement]
    proc = subprocess.run(cmd, env=pip_env, capture_output=True, text=True, timeout=120)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def imported_tag(target: Path) -> str:
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import fm_featurizer; print(fm_featurizer.TAG)"
    proc = subprocess.run([sys.executable, "-c", code], env=pip_env, capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or f"import failed: {proc.stderr.strip()[-120:]}"


scenarios = {
    "floating": (newer_index, ["fm-featurizer"], "canary-floating.txt"),
    "version_pin": (mirror_index, ["fm-featurizer==1.0.0"], "canary-version-pin.txt"),
    "hash_pin": (mirror_index, ["--require-hashes", "-r", str(lock)], None),
}
for name, (index, requirement, marker_name) in scenarios.items():
    target = work / f"site-{name}"
    rc, message = pip_install(index, target, *requirement)
    tag = imported_tag(target) if rc == 0 else "not installed"
    executed = marker_name is not None and (canaries / marker_name).exists()
    run.metric(f"packages.{name}.installed", rc == 0)
    run.metric(f"packages.{name}.got_tampered", tag == "tampered")
    run.metric(f"packages.{name}.attacker_code_ran", executed)
    run.log("pip.install", requirement=" ".join(requirement[-1:]), index=index.name, rc=rc, imported=tag,
            attacker_code_ran=executed, pip_says=message.splitlines()[0][:160] if message else "")
refused_message = pip_install(mirror_index, work / "site-check", "--require-hashes", "-r", str(lock))[1]
run.metric("packages.hash_pin.pip_reported_mismatch", "DO NOT MATCH THE HASHES" in refused_message)

genuine_ok = 0
for i in range(GENUINE_INSTALLS):
    target = work / f"site-genuine-{i}"
    rc, _ = pip_install(genuine_index, target, "--require-hashes", "-r", str(lock))
    genuine_ok += rc == 0 and imported_tag(target) == "genuine"
run.metric("packages.hash_pin.false_rejection_rate", 1 - genuine_ok / GENUINE_INSTALLS)

# --- 2. models ------------------------------------------------------------------------------
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.3, random_state=run.seed, stratify=y)


def train(labels: np.ndarray) -> bytes:
    clf = RidgeClassifier().fit(X_tr, labels)
    # safetensors stores the raw buffer: arrays must be C-contiguous (scikit-learn's coef_ may not be)
    return save({k: np.ascontiguousarray(v) for k, v in
                 {"coef": clf.coef_, "intercept": clf.intercept_, "classes": clf.classes_}.items()})


def evaluate(payload: bytes) -> tuple[float, float]:
    weights = load(payload)
    scores = X_te @ weights["coef"].T + weights["intercept"]
    pred = weights["classes"][scores.argmax(1)]
    return float((pred == y_te).mean()), float((pred[y_te == SOURCE] == SOURCE).mean())


genuine_model = train(y_tr)
poisoned_labels = np.where(y_tr == SOURCE, TARGET, y_tr)
poisoned_model = train(poisoned_labels)
genuine_rev = hashlib.sha256(genuine_model).hexdigest()[:12]
genuine_sha = hashlib.sha256(genuine_model).hexdigest()
poisoned_rev = hashlib.sha256(poisoned_model).hexdigest()[:12]
for label, payload in (("genuine", genuine_model), ("poisoned", poisoned_model)):
    accuracy, recall = evaluate(payload)
    run.metric(f"models.{label}.accuracy", accuracy)
    run.metric(f"models.{label}.recall_class_{SOURCE}", recall)

model_hub = hub.Hub(work / "hub")
try:
    repo = "lab/digits-classifier"
    model_hub.publish(repo, genuine_rev, genuine_model)
    model_hub.publish(repo, RELEASE_TAG, genuine_model)  # the maintainers tag the release
    # The pin a team writes down on day one: the release tag, and the digest of what they reviewed.
    pinned_revision, pinned_sha = RELEASE_TAG, genuine_sha
    model_hub.publish(repo, poisoned_rev, poisoned_model)  # attacker: new revision, `latest` moves

    def client(mode: str) -> tuple[str, float | None]:
        try:
            if mode == "latest":
                payload, _rev = hub.download(model_hub.url, repo)
            elif mode == "tag_pin":
                payload, _rev = hub.download(model_hub.url, repo, pinned_revision)
            else:
                payload, _rev = hub.download(model_hub.url, repo, pinned_revision, pinned_sha)
        except hub.PinError as exc:
            run.log("download.refused", mode=mode, reason=str(exc))
            return "refused", None
        got = "poisoned" if payload == poisoned_model else "genuine" if payload == genuine_model else "other"
        return got, evaluate(payload)[1]

    for phase in ("after_new_revision", "after_tag_move"):
        if phase == "after_tag_move":
            # attacker with write access moves the release tag to the poisoned files
            model_hub.publish(repo, RELEASE_TAG, poisoned_model, move_latest=False)
        for mode in ("latest", "tag_pin", "hash_pin"):
            got, recall = client(mode)
            run.metric(f"models.{phase}.{mode}.got", got)
            run.metric(f"models.{phase}.{mode}.got_poisoned", got == "poisoned")
            if recall is not None:
                run.metric(f"models.{phase}.{mode}.recall_class_{SOURCE}", recall)
            run.log("download.result", phase=phase, client=mode, got=got, recall=recall)

    model_hub.publish(repo, pinned_revision, genuine_model, move_latest=False)  # the tag moved back
    accepted = 0
    for _ in range(GENUINE_DOWNLOADS):
        payload, _ = hub.download(model_hub.url, repo, pinned_revision, pinned_sha)
        accepted += payload == genuine_model
    run.metric("models.hash_pin.false_rejection_rate", 1 - accepted / GENUINE_DOWNLOADS)
finally:
    model_hub.close()

run.metric("models.recall_drop_if_poisoned",
           run.metrics["models"]["genuine"][f"recall_class_{SOURCE}"] - run.metrics["models"]["poisoned"][f"recall_class_{SOURCE}"])
shutil.copyfile(lock, run.artifact("requirements.lock"))
shutil.rmtree(work, ignore_errors=True)  # wheels, installed copies and the hub: not needed in the record
run.finish()
