"""Five training runs of one model on one dataset, differing only in the training seed.

An ordinary program built twice from the same source behaves the same. A model trained twice from
the same code and data does not: the seed sets the initial weights and the order of the batches,
and each run ends in a different set of weights that makes different mistakes. The module trains
the digits CNN of the evasion modules (same split, same hyper-parameters) once per seed and measures:

- what the usual report sees: each twin's test accuracy, and their spread;
- what it hides: how often two twins give different answers on the same test digit (churn), and on
  how many digits at least one twin disagrees;
- whether a security result carries over: PGD examples crafted on twin 0 against every other twin
  (transfer), and each twin's own robustness at the same radius;
- what the disagreement tells an operator: the twins' confidence where they disagree versus where
  they agree;
- that a pinned seed does reproduce: twin 0 trained again with its own seed.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from digits_lab import DigitsCNN, load_split, pgd, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

TWINS = run.pick(full=5, smoke=3)
EPOCHS = run.pick(full=30, smoke=2)
PGD_STEPS = run.pick(full=20, smoke=3)
EPS = 0.1  # a radius where the naive model is hurt but not destroyed, so twins can differ


def train_twin(seed: int, x: torch.Tensor, y: torch.Tensor, tag: str) -> torch.nn.Module:
    torch.manual_seed(seed)  # the initial weights
    model = DigitsCNN().to(device)
    return train(model, x, y, epochs=EPOCHS, seed=seed, log=run.log, tag=tag)  # the batch order


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    probs = torch.softmax(model(x), 1)
    return probs.argmax(1).cpu().numpy(), probs.max(1).values.cpu().numpy()


def figure(disagree: np.ndarray, accs: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = [f"seed {i}" for i in range(len(accs))]
    left.bar(names, [1 - a for a in accs], color="#2e86c1")
    left.set_ylabel("test error rate")
    left.set_title("What the report sees: each twin's error")
    im = right.imshow(disagree, cmap="Oranges", vmin=0)
    right.set_xticks(range(len(names)), names, rotation=30)
    right.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(disagree):
        right.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8)
    right.set_title("What it hides: share of digits two twins label differently")
    fig.colorbar(im, ax=right, fraction=0.04)
    run.figure(fig, "twins-error-vs-disagreement")


def main() -> None:
    x_tr, y_tr, x_te, y_te = load_split(run.seed, device)  # one split for every twin
    run.log("data.loaded", dataset="sklearn.load_digits", train=len(x_tr), test=len(x_te), split_seed=run.seed)
    seeds = [1000 * run.seed + k for k in range(TWINS)]
    twins = [train_twin(s, x_tr, y_tr, f"twin{k}") for k, s in enumerate(seeds)]
    labels = y_te.cpu().numpy()
    preds, confs = zip(*(predict(m, x_te) for m in twins))
    accs = [float((p == labels).mean()) for p in preds]
    for k, (s, a) in enumerate(zip(seeds, accs)):
        run.log("twin.evaluated", twin=k, train_seed=s, test_accuracy=round(a, 4))

    n = len(twins)
    disagree = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        disagree[i, j] = disagree[j, i] = float((preds[i] != preds[j]).mean())
    pairs = [disagree[i, j] for i, j in itertools.combinations(range(n), 2)]
    stacked = np.stack(preds)
    split = (stacked != stacked[0]).any(0)  # the digits on which not every twin gives the same label
    errors = [1 - a for a in accs]
    run.metric("twins", n)
    run.metric("test_samples", len(labels))
    run.metric("accuracy", {"min": min(accs), "max": max(accs), "mean": float(np.mean(accs)),
                            "spread": max(accs) - min(accs)})
    run.metric("error_rate.mean", float(np.mean(errors)))
    run.metric("churn", {"mean_pairwise": float(np.mean(pairs)), "max_pairwise": float(np.max(pairs)),
                         "any_twin_disagrees": float(split.mean()),
                         "pairwise_over_accuracy_spread": float(np.mean(pairs)) / max(max(accs) - min(accs), 1e-9)})
    conf = np.stack(confs).mean(0)
    run.metric("confidence", {"where_twins_disagree": float(conf[split].mean()) if split.any() else float("nan"),
                              "where_twins_agree": float(conf[~split].mean())})
    wrong_somewhere = (stacked != labels).any(0)
    run.metric("errors.digits_some_twin_gets_wrong", float(wrong_somewhere.mean()))
    run.log("twins.compared", mean_pairwise_disagreement=round(float(np.mean(pairs)), 4),
            any_twin_disagrees=round(float(split.mean()), 4), accuracy_spread=round(max(accs) - min(accs), 4))

    # A security result measured on one artifact, applied to its twins.
    adv = pgd(twins[0], x_te, y_te, EPS, PGD_STEPS, seed=run.seed)
    fooled = [float((predict(m, adv)[0] != labels).mean()) for m in twins]
    own = []
    for k, m in enumerate(twins):
        own_adv = adv if k == 0 else pgd(m, x_te, y_te, EPS, PGD_STEPS, seed=run.seed)
        own.append(float((predict(m, own_adv)[0] == labels).mean()))
    run.metric("eps", EPS)
    run.metric("transfer", {"white_box_error": fooled[0], "to_twins_error_mean": float(np.mean(fooled[1:])),
                            "to_twins_error_min": float(np.min(fooled[1:]))})
    run.metric("robustness", {"pgd_accuracy_min": min(own), "pgd_accuracy_max": max(own),
                              "pgd_accuracy_spread": max(own) - min(own)})
    run.log("attack.transfer", crafted_on="twin0", eps=EPS, pgd_steps=PGD_STEPS,
            error_on_twin0=round(fooled[0], 4), error_on_twins=[round(f, 4) for f in fooled[1:]],
            own_pgd_accuracy=[round(a, 4) for a in own])

    # Reproducibility: the same seed again gives the same weights and the same answers.
    again = train_twin(seeds[0], x_tr, y_tr, "twin0.again")
    same = predict(again, x_te)[0]
    max_diff = max(float((a - b).abs().max()) for a, b in zip(twins[0].state_dict().values(), again.state_dict().values()))
    run.metric("same_seed", {"disagreement": float((same != preds[0]).mean()), "max_weight_difference": max_diff})
    run.log("twin.retrained", train_seed=seeds[0], disagreement=float((same != preds[0]).mean()), max_weight_difference=max_diff)
    figure(disagree, accs)
    run.finish()


if __name__ == "__main__":
    main()
