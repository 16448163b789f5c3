"""Model tampering and signing: one changed weight, a signature that catches it, a loader
that refuses unsigned or tampered models, and a registry that will not let a version change.

1. Train a small MLP on scikit-learn's digits; save it as safetensors; sign the folder's
   manifest with Ed25519.
2. Tamper: a targeted edit of one number (a class bias) that hijacks predictions, and many
   random single-weight and single-bit changes that accuracy monitoring cannot see.
3. The verifying loader: genuine loads pass (false rejections), every tampered, unsigned,
   foreign-signed or renamed model is refused (detection).
4. The write-once registry: overwrite refused, a blob changed behind its back refused on
   fetch, an edited audit line detected.
"""

from __future__ import annotations

import json
import shutil
import statistics
import struct
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import signing
from fmbuild.evidence import kit
from registry import Registry, RegistryError

run = kit.start(__file__)
# One thread: on small models a second intra-op thread only adds contention (18x slower per step
# measured on a loaded 2-core runner), and verify may run several modules side by side.
torch.set_num_threads(1)
EPOCHS = run.pick(full=30, smoke=3)
RANDOM_TAMPERS = run.pick(full=300, smoke=20)
GENUINE_LOADS = run.pick(full=100, smoke=10)
TARGET_CLASS = 3
rng = np.random.default_rng(run.seed)

work = run.out / "work"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=run.seed, stratify=y)
x_test = torch.from_numpy(X_te)


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


model = make_model()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
xt, yt = torch.from_numpy(X_tr), torch.from_numpy(y_tr)
gen = torch.Generator().manual_seed(run.seed)
for _ in range(EPOCHS):
    for idx in torch.randperm(len(xt), generator=gen).split(64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
model.eval()
state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def accuracy_of(weights: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(test accuracy, share of test inputs predicted as TARGET_CLASS)."""
    net = make_model()
    net.load_state_dict(weights)
    with torch.no_grad():
        pred = net.eval()(x_test).argmax(1).numpy()
    return float((pred == y_te).mean()), float((pred == TARGET_CLASS).mean())


genuine_accuracy, genuine_target_share = accuracy_of(state)
run.metric("model.accuracy", genuine_accuracy)
run.log("model.trained", epochs=EPOCHS, accuracy=round(genuine_accuracy, 4))

# Keys: the publisher's (trusted by the serving side) and an attacker's own.
publisher = Ed25519PrivateKey.from_private_bytes(bytes(rng.integers(0, 256, 32, dtype=np.uint8)))
attacker = Ed25519PrivateKey.from_private_bytes(bytes(rng.integers(0, 256, 32, dtype=np.uint8)))
trusted = {signing.key_id(publisher.public_key()): publisher.public_key()}

release = work / "release"
release.mkdir()
save_file(state, str(release / "model.safetensors"))
(release / "config.json").write_text(json.dumps({"arch": "mlp-64-128-10", "classes": 10}))
t0 = time.perf_counter()
signing.sign(release, "digits-mlp", "1.0.0", publisher)
run.metric("timing.sign_ms", 1000 * (time.perf_counter() - t0))
run.log("model.signed", name="digits-mlp", version="1.0.0", key_id=signing.key_id(publisher.public_key()))


def copy_release(name: str) -> Path:
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(release, dest)
    return dest


def refused(folder: Path, expect: str = "digits-mlp") -> tuple[bool, str]:
    try:
        signing.load_verified(folder, trusted, expect)
        return False, ""
    except signing.VerificationError as exc:
        return True, str(exc)


# --- genuine loads: the false-rejection rate ---------------------------------------------------
verify_times, false_rejections = [], 0
for _ in range(GENUINE_LOADS):
    t0 = time.perf_counter()
    rejected, _reason = refused(release)
    verify_times.append(time.perf_counter() - t0)
    false_rejections += rejected
run.metric("loader.genuine_loads", GENUINE_LOADS)
run.metric("loader.false_rejection_rate", false_rejections / GENUINE_LOADS)
run.metric("timing.verify_and_load_ms", 1000 * statistics.median(verify_times))
run.metric("model.bytes", (release / "model.safetensors").stat().st_size)

# --- the targeted tamper: one number changed --------------------------------------------------
bias_key = "2.bias"


def with_bias_shift(delta: float) -> dict[str, torch.Tensor]:
    edited = {k: v.clone() for k, v in state.items()}
    edited[bias_key][TARGET_CLASS] += delta
    return edited


def train_target_share(weights: dict[str, torch.Tensor]) -> float:
    net = make_model()
    net.load_state_dict(weights)
    with torch.no_grad():
        return float((net.eval()(xt).argmax(1) == TARGET_CLASS).float().mean())


# The attacker owns the file, so it can tune the one number on data of its own (the training
# split here) until the model answers TARGET_CLASS for nine inputs in ten; the test split measures it.
delta = next((d for d in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0) if train_target_share(with_bias_shift(d)) >= 0.9), 64.0)
hijacked = with_bias_shift(delta)
run.metric("tamper.targeted.bias_delta", delta)
hijacked_accuracy, hijacked_share = accuracy_of(hijacked)
run.metric("tamper.targeted.accuracy", hijacked_accuracy)
run.metric("tamper.targeted.target_share", hijacked_share)
run.metric("tamper.targeted.genuine_target_share", genuine_target_share)
run.metric("tamper.targeted.accuracy_drop", genuine_accuracy - hijacked_accuracy)
target_folder = copy_release("tampered-bias")
save_file(hijacked, str(target_folder / "model.safetensors"))
is_refused, reason = refused(target_folder)
run.metric("loader.refused.targeted_bias_edit", is_refused)
run.log("tamper.targeted", tensor=bias_key, index=TARGET_CLASS, delta=delta, accuracy=round(hijacked_accuracy, 4),
        predicted_as_target=round(hijacked_share, 4), loader_refused=is_refused, reason=reason)

# --- the stealth tamper: a backdoor written into the weights, invisible to accuracy ----------
# The attacker repurposes the hidden unit the model uses least: its inputs now read only the four
# corner pixels (blank in every handwritten digit), its bias keeps it silent unless all four carry
# ink, and its output votes for TARGET_CLASS. Clean inputs never wake it, so clean accuracy moves
# only by what that one unit contributed; stamped inputs become TARGET_CLASS.
TRIGGER = [0, 7, 56, 63]


def stamp(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, TRIGGER] = 1.0
    return out


def with_backdoor(gain: float) -> dict[str, torch.Tensor]:
    edited = {k: v.clone() for k, v in state.items()}
    use = edited["0.weight"].norm(dim=1) * edited["2.weight"].norm(dim=0)
    unit = int(use.argmin())
    edited["0.weight"][unit] = 0.0
    edited["0.weight"][unit, TRIGGER] = 5.0
    edited["0.bias"][unit] = -15.0  # needs all four corners inked: 4 * 5 - 15 = 5 > 0
    edited["2.weight"][:, unit] = 0.0
    edited["2.weight"][TARGET_CLASS, unit] = gain
    return edited


def trigger_success(weights: dict[str, torch.Tensor], x: np.ndarray, labels: np.ndarray) -> float:
    net = make_model()
    net.load_state_dict(weights)
    keep = labels != TARGET_CLASS
    with torch.no_grad():
        pred = net.eval()(torch.from_numpy(stamp(x[keep]))).argmax(1).numpy()
    return float((pred == TARGET_CLASS).mean())


# tuned on the attacker's own data (the training split), measured on the test split
gain = next((g for g in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0) if trigger_success(with_backdoor(g), X_tr, y_tr) >= 0.95), 64.0)
backdoored = with_backdoor(gain)
stealth_accuracy, _ = accuracy_of(backdoored)
run.metric("tamper.stealth.gain", gain)
run.metric("tamper.stealth.accuracy", stealth_accuracy)
run.metric("tamper.stealth.accuracy_drop", genuine_accuracy - stealth_accuracy)
run.metric("tamper.stealth.trigger_success", trigger_success(backdoored, X_te, y_te))
run.metric("tamper.stealth.genuine_trigger_success", trigger_success(state, X_te, y_te))
run.metric("tamper.stealth.weights_changed", int(sum(int((backdoored[k] != state[k]).sum()) for k in state)))
stealth_folder = copy_release("tampered-backdoor")
save_file(backdoored, str(stealth_folder / "model.safetensors"))
is_refused, reason = refused(stealth_folder)
run.metric("loader.refused.stealth_backdoor", is_refused)
run.log("tamper.stealth", trigger_pixels=TRIGGER, gain=gain, accuracy=round(stealth_accuracy, 4),
        accuracy_drop=round(genuine_accuracy - stealth_accuracy, 4),
        trigger_success=round(run.metrics["tamper"]["stealth"]["trigger_success"], 4),
        loader_refused=is_refused, reason=reason)

# --- many random single-value tampers: invisible to accuracy, visible to the signature --------
safetensors_bytes = (release / "model.safetensors").read_bytes()
header_len = struct.unpack("<Q", safetensors_bytes[:8])[0]
data_start = 8 + header_len
n_floats = (len(safetensors_bytes) - data_start) // 4
detected, unnoticed_by_accuracy, drops = 0, 0, []
random_folder = copy_release("tampered-random")
for i in range(RANDOM_TAMPERS):
    data = bytearray(safetensors_bytes)
    offset = data_start + 4 * int(rng.integers(n_floats))
    if i % 2 == 0:  # flip the lowest mantissa bit: the smallest change a float allows
        data[offset] ^= 0x01
        kind = "lsb"
    else:  # negate the weight: flip its sign bit
        data[offset + 3] ^= 0x80
        kind = "sign"
    (random_folder / "model.safetensors").write_bytes(bytes(data))
    is_refused, _ = refused(random_folder)
    detected += is_refused
    acc, _ = accuracy_of(load_file(str(random_folder / "model.safetensors")))
    drops.append(genuine_accuracy - acc)
    unnoticed_by_accuracy += abs(genuine_accuracy - acc) < 0.005
    if i < 4:
        run.log("tamper.random", kind=kind, byte_offset=offset, loader_refused=is_refused,
                accuracy_change=round(acc - genuine_accuracy, 4))
run.metric("tamper.random.count", RANDOM_TAMPERS)
run.metric("tamper.random.detection_rate", detected / RANDOM_TAMPERS)
run.metric("tamper.random.unnoticed_by_accuracy_rate", unnoticed_by_accuracy / RANDOM_TAMPERS)
run.metric("tamper.random.max_accuracy_drop", max(drops))

# --- the other ways a model arrives unverifiable ------------------------------------------------
cases = {}
unsigned = copy_release("unsigned")
(unsigned / signing.SIGNATURE_FILE).unlink()
save_file(hijacked, str(unsigned / "model.safetensors"))
cases["unsigned"] = refused(unsigned)
resigned = copy_release("resigned-by-attacker")
save_file(hijacked, str(resigned / "model.safetensors"))
signing.sign(resigned, "digits-mlp", "1.0.1", attacker)
cases["attacker_key"] = refused(resigned)
config_edit = copy_release("config-edited")
(config_edit / "config.json").write_text(json.dumps({"arch": "mlp-64-128-10", "classes": 10, "trust_remote_code": True}))
cases["config_edit"] = refused(config_edit)
cases["other_model_name"] = refused(release, expect="fraud-scorer")
swapped = copy_release("signature-swapped")
manifest = json.loads((swapped / signing.SIGNATURE_FILE).read_text())
manifest["manifest"]["files"]["model.safetensors"] = signing.sha256_file(target_folder / "model.safetensors")
(swapped / signing.SIGNATURE_FILE).write_text(json.dumps(manifest))
shutil.copyfile(target_folder / "model.safetensors", swapped / "model.safetensors")
cases["manifest_rewritten"] = refused(swapped)
for name, (is_refused, reason) in cases.items():
    run.metric(f"loader.refused.{name}", is_refused)
    run.log("loader.verdict", case=name, refused=is_refused, reason=reason)
all_attacks = [run.metrics["loader"]["refused"]["targeted_bias_edit"], run.metrics["loader"]["refused"]["stealth_backdoor"],
               *[c[0] for c in cases.values()]]
run.metric("loader.attack_cases", len(all_attacks))
run.metric("loader.attack_detection_rate", sum(all_attacks) / len(all_attacks))

# --- the immutable registry ---------------------------------------------------------------------
registry = Registry(work / "registry")
registry.publish("digits-mlp", "1.0.0", release, actor="ci-release")
try:
    registry.publish("digits-mlp", "1.0.0", resigned, actor="mallory")
    overwrite_refused = False
except RegistryError as exc:
    overwrite_refused = True
    run.log("registry.refused", reason=str(exc))
try:
    registry.publish("digits-mlp", "1.0.2", unsigned, actor="mallory")
    unsigned_refused = False
except RegistryError as exc:
    unsigned_refused = True
    run.log("registry.refused", reason=str(exc))
fetched = registry.fetch("digits-mlp", "1.0.0", work / "fetched-ok")
genuine_fetch_loads = not refused(fetched)[0]
# An insider with storage access swaps the blob under the index (bypassing publish).
entry = json.loads((registry.index / "digits-mlp@1.0.0.json").read_text())
blob = registry.blobs / entry["files"]["model.safetensors"]
blob.chmod(0o644)
blob.write_bytes((target_folder / "model.safetensors").read_bytes())
try:
    registry.fetch("digits-mlp", "1.0.0", work / "fetched-tampered")
    blob_tamper_refused = False
except RegistryError as exc:
    blob_tamper_refused = True
    run.log("registry.refused", reason=str(exc))
# ... and then edits the audit log to hide the refused overwrite.
lines = registry.audit.read_text().splitlines()
edited = json.loads(lines[1])
edited["actor"] = "ci-release"
lines[1] = json.dumps(edited, sort_keys=True)
registry.audit.write_text("\n".join(lines) + "\n")
intact, bad_line = registry.audit_intact()
run.metric("registry.overwrite_refused", overwrite_refused)
run.metric("registry.unsigned_refused", unsigned_refused)
run.metric("registry.genuine_fetch_verifies", genuine_fetch_loads)
run.metric("registry.blob_tamper_refused", blob_tamper_refused)
run.metric("registry.audit_edit_detected", not intact)
run.log("registry.audit_check", intact=intact, first_bad_line=bad_line)

fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.hist(np.array(drops) * 100, bins=30, color="#4c72b0")
ax.axvline(0.5, color="#c44e52", ls="--", label="0.5 pt: what accuracy monitoring could notice")
ax.set_xlabel("test accuracy drop after one random weight change (points)")
ax.set_ylabel("tampered copies")
ax.set_title(f"{RANDOM_TAMPERS} single-weight tampers: signature refused "
             f"{run.metrics['tamper']['random']['detection_rate']:.0%}")
ax.legend(fontsize=8)
run.figure(fig, "single-weight-tamper-accuracy-drop")
# Keep the signed manifest and the audit log as artifacts; the model copies are not needed in the record.
shutil.copyfile(release / signing.SIGNATURE_FILE, run.artifact("model.sig.json"))
shutil.copyfile(registry.audit, run.artifact("registry-audit.jsonl"))
shutil.rmtree(work, ignore_errors=True)

run.finish()
