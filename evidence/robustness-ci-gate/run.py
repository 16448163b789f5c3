"""A robustness gate that really gates: run gate.py against a naive and a hardened model.

Trains two digits CNNs on the same split: a naive one, and one hardened with fast adversarial
training (FGSM from a random start, Wong et al. 2020). Saves both, then runs the CI gate
(`gate.py`, a separate process, exactly as a pipeline step would) against each: once as a
clean-accuracy-only gate (the common setup that checks nothing about attacks) and once as a
robustness gate (accuracy under PGD at eps=0.1 must stay >= 0.70, the threshold of seed 004).
Each verdict and exit code is recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from digits_lab import DigitsCNN, load_split, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

GATE = Path(__file__).resolve().parent / "gate.py"
EPOCHS = run.pick(full=30, smoke=2)
TRAIN_EPS = 0.15  # fast adversarial training radius: a bit above the gate's, so the margin holds
GATE_EPS = 0.1
ROBUST_THRESHOLD = 0.70  # "fail if accuracy drops below 70% under attack"
CLEAN_THRESHOLD = 0.90
GATE_STEPS = run.pick(full=20, smoke=3)


def fgsm_random_start(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One FGSM step of 1.25*eps from a uniform random point in the ball, projected back."""
    delta = (torch.rand_like(x) * 2 - 1) * TRAIN_EPS
    adv = (x + delta).clamp(0, 1).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(adv), y)
    (grad,) = torch.autograd.grad(loss, adv)
    adv = adv.detach() + 1.25 * TRAIN_EPS * grad.sign()
    return torch.min(torch.max(adv, x - TRAIN_EPS), x + TRAIN_EPS).clamp(0, 1)


def gate(model_path: Path, attack: str, threshold: float) -> dict:
    """Run gate.py as a CI step would and return its verdict line plus exit code."""
    cmd = [sys.executable, str(GATE), "--model", str(model_path), "--threshold", str(threshold),
           "--attack", attack, "--eps", str(GATE_EPS), "--steps", str(GATE_STEPS), "--split-seed", str(run.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, 1) or not lines:
        raise SystemExit(f"gate.py crashed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    verdict = json.loads(lines[-1])
    verdict["exit_code"] = proc.returncode
    return verdict


def main() -> None:
    x_tr, y_tr, _, _ = load_split(run.seed, device)
    models_dir = run.artifact("models")
    models_dir.mkdir(exist_ok=True)
    paths = {}
    for name, adversary in (("naive", None), ("hardened", fgsm_random_start)):
        torch.manual_seed(run.seed)
        model = train(DigitsCNN().to(device), x_tr, y_tr, epochs=EPOCHS, seed=run.seed, log=run.log,
                      adversary=adversary, tag=name)
        paths[name] = models_dir / f"{name}.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, paths[name])
        run.log("model.saved", model=name, path=f"models/{name}.safetensors")

    for name, path in paths.items():
        for gate_name, attack, threshold in (("clean_gate", "none", CLEAN_THRESHOLD),
                                             ("robustness_gate", "pgd", ROBUST_THRESHOLD)):
            verdict = gate(path, attack, threshold)
            details = {k: v for k, v in verdict.items() if k not in ("event", "model")}
            run.log("ci.step", model=name, gate=gate_name, **details)
            run.metric(f"{name}.{gate_name}.exit_code", verdict["exit_code"])
            run.metric(f"{name}.{gate_name}.passed", verdict["exit_code"] == 0)
            run.metric(f"{name}.{gate_name}.accuracy", verdict["accuracy"])
    # a usage error must not read as a pass: a missing or corrupt model file exits 2
    corrupt = models_dir / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    for case, path in (("missing_model", models_dir / "absent.safetensors"), ("corrupt_model", corrupt)):
        proc = subprocess.run([sys.executable, str(GATE), "--model", str(path), "--threshold", "0.7"],
                              capture_output=True, text=True, timeout=120)
        run.log("ci.step", model=path.name, gate="robustness_gate", exit_code=proc.returncode,
                stderr=proc.stderr.strip()[-300:])
        run.metric(f"{case}.exit_code", proc.returncode)
    corrupt.unlink()
    run.metric("gate.eps", GATE_EPS)
    run.metric("gate.robust_threshold", ROBUST_THRESHOLD)
    run.metric("gate.clean_threshold", CLEAN_THRESHOLD)
    run.metric("gate.pgd_steps", GATE_STEPS)
    run.finish()


if __name__ == "__main__":
    main()
