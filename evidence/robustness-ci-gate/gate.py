"""A robustness gate for CI: fail the pipeline when the model's accuracy under attack is too low.

    python gate.py --model model.safetensors --threshold 0.70 --eps 0.1            # PGD, the default
    python gate.py --model model.safetensors --threshold 0.90 --attack none        # clean accuracy only

It loads a digits CNN from a safetensors file (tensors only: nothing in it can execute), attacks the held-out digits
split with PGD (or FGSM, or nothing), prints one JSON verdict line and exits
0 when accuracy >= threshold, 1 when it is below, 2 on a usage error (missing or unreadable model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import torch  # noqa: E402
from safetensors import SafetensorError  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from digits_lab import DigitsCNN, accuracy, fgsm, load_split, pgd  # noqa: E402

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fail when accuracy under attack is below a threshold.")
    p.add_argument("--model", required=True, type=Path, help="DigitsCNN weights as .safetensors")
    p.add_argument("--threshold", required=True, type=float, help="minimum accuracy to pass, in [0, 1]")
    p.add_argument("--attack", choices=["pgd", "fgsm", "none"], default="pgd")
    p.add_argument("--eps", type=float, default=0.1, help="L-infinity radius (pixels in [0, 1])")
    p.add_argument("--steps", type=int, default=20, help="PGD steps")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split the model used")
    args = p.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        p.error("--threshold must be between 0 and 1")
    if args.eps < 0 or args.steps < 1:
        p.error("--eps must be >= 0 and --steps >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        model = DigitsCNN()
        model.load_state_dict(load_file(args.model, device="cpu"))
    except (OSError, RuntimeError, KeyError, ValueError, SafetensorError) as exc:
        print(f"gate: cannot load model {args.model}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    model.eval()
    _, _, x, y = load_split(args.split_seed, torch.device("cpu"))
    if args.attack == "pgd":
        x = pgd(model, x, y, args.eps, args.steps, seed=args.split_seed + 1)
    elif args.attack == "fgsm":
        x = fgsm(model, x, y, args.eps)
    acc = accuracy(model, x, y)
    passed = acc >= args.threshold
    print(json.dumps({"event": "gate.verdict", "model": args.model.name, "attack": args.attack,
                      "eps": args.eps if args.attack != "none" else 0.0, "accuracy": round(acc, 4),
                      "threshold": args.threshold, "verdict": "pass" if passed else "fail"}), flush=True)
    return EXIT_PASS if passed else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
