"""Model extraction through a prediction API, and two controls measured against it.

The victim is the digits CNN behind `PredictionAPI`, a local inference function that answers each
client with the top-1 label (as most classification endpoints do) and counts every call. The attacker owns 30 unlabeled digits, no
training data and no weights. It synthesises queries from them (mixup of two of its digits plus
noise), labels them with the victim's answers, and trains a surrogate; fidelity (agreement with the
victim on digits neither has seen) is measured against the number of queries.

Controls:
- query budget: a per-client token bucket, sized the way an operator sizes one: the BUDGET_QUANTILE
  of last week's per-client daily volumes (a calibration population). Benign volumes are
  heavy-tailed (lognormal, no cap), so today's clients, drawn afresh, can exceed it. Measured: the
  fidelity the attacker reaches inside the budget, the share of benign queries refused and the share
  of benign clients that hit the limit (false alarms).
- query-pattern monitoring (PRADA, Juuti et al. 2019): per client, the minimum L2 distance of each
  new query to that client's earlier ones; natural traffic gives a roughly normal distribution,
  synthesised queries do not (Shapiro-Wilk W below a threshold calibrated on benign clients).
  Measured: detection rate over attacker clients (the generator of the attack, and a held-out
  family the threshold never saw: noise around single seed digits), false-positive rate over
  held-out benign clients, and over hard negatives: "burst" clients that send a few photos of the
  same digits again and again with sensor noise (a camera app retrying), which look repetitive too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the repository is read-only inside the sandbox
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "evasion-fgsm-pgd"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import shapiro  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from digits_lab import DigitsCNN, train  # noqa: E402
from fmbuild.evidence import kit  # noqa: E402

run = kit.start(__file__)
torch.set_num_threads(1)  # tiny models: a second thread only waits for a core on a shared machine
device = run.torch_device()

EPOCHS = run.pick(full=30, smoke=3)
QUERY_STEPS = run.pick(full=[50, 100, 200, 400, 800, 1600, 3200], smoke=[50, 200])
ATTACKER_SEED_IMAGES = 30
BUDGET_QUANTILE = 0.99  # the budget: this quantile of last week's per-client daily volumes
BENIGN_MEDIAN, BENIGN_SIGMA = 40, 0.9  # lognormal daily volumes: most clients send a few dozen, a few send hundreds
SURROGATE_EPOCHS = run.pick(full=300, smoke=30)
BENIGN_CLIENTS = run.pick(full=1000, smoke=100)  # today's clients (and as many last week, for sizing)
ATTACK_CLIENTS = run.pick(full=20, smoke=4)
MONITOR_WINDOW = 100  # PRADA tests a client once it has sent this many queries
MONITOR_CLIENTS = run.pick(full=300, smoke=40)  # active benign clients: half calibrate, half evaluate
MONITOR_FPR = 0.05  # threshold calibrated on benign clients held out from the evaluation


class PredictionAPI:
    """A local inference endpoint: per-client accounting, optional token-bucket budget, a log."""

    def __init__(self, model: nn.Module, budget: int | None = None) -> None:
        self.model, self.budget = model, budget
        self.served: dict[str, int] = {}
        self.refused: dict[str, int] = {}

    @torch.no_grad()
    def predict(self, client: str, x: torch.Tensor) -> torch.Tensor | None:
        used = self.served.get(client, 0)
        if self.budget is not None and used + len(x) > self.budget:
            allowed = max(self.budget - used, 0)
            self.refused[client] = self.refused.get(client, 0) + len(x) - allowed
            if allowed == 0:
                return None  # HTTP 429: budget spent for today
            x = x[:allowed]
        self.served[client] = used + len(x)
        return F.one_hot(self.model(x).argmax(1), 10).float()


class Surrogate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def synthesise(seed_images: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """The attacker's queries: mixup of two of its own digits plus pixel noise, clipped to [0, 1]."""
    i, j = rng.integers(0, len(seed_images), size=(2, n))
    lam = torch.from_numpy(rng.uniform(0.0, 1.0, size=(n, 1, 1, 1)).astype(np.float32)).to(device)
    noise = torch.from_numpy(rng.normal(0, 0.1, size=(n, 1, 8, 8)).astype(np.float32)).to(device)
    return (lam * seed_images[i] + (1 - lam) * seed_images[j] + noise).clamp(0, 1)


def fit_surrogate(x: torch.Tensor, answers: torch.Tensor) -> Surrogate:
    labels = answers.argmax(1)
    torch.manual_seed(run.seed)
    model = Surrogate().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(SURROGATE_EPOCHS):
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def fidelity(victim: nn.Module, surrogate: nn.Module, x: torch.Tensor) -> float:
    return (victim(x).argmax(1) == surrogate(x).argmax(1)).float().mean().item()


def extract(api: PredictionAPI, client: str, seed_images: torch.Tensor, n: int, rng: np.random.Generator,
            victim: nn.Module, x_eval: torch.Tensor) -> tuple[float, int]:
    """Send n synthesised queries in batches of 50; train on whatever the API answered."""
    xs, ys = [], []
    queries = synthesise(seed_images, n, rng)
    for i in range(0, n, 50):
        answer = api.predict(client, queries[i : i + 50])
        if answer is None:
            break
        xs.append(queries[i : i + len(answer)])
        ys.append(answer)
    x_got, y_got = torch.cat(xs), torch.cat(ys)
    return fidelity(victim, fit_surrogate(x_got, y_got), x_eval), len(x_got)


def prada_statistic(queries: np.ndarray) -> float:
    """Shapiro-Wilk W of the minimum L2 distance from each query to the client's earlier ones."""
    flat = queries.reshape(len(queries), -1)
    dists = [np.linalg.norm(flat[:k] - flat[k], axis=1).min() for k in range(1, len(flat))]
    return float(shapiro(np.asarray(dists)).statistic)


def plot(curve: list[tuple[int, float]], budget_point: tuple[int, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([q for q, _ in curve], [f for _, f in curve], marker="o", label="unlimited API")
    ax.scatter([budget_point[0]], [budget_point[1]], color="red", zorder=3, label=f"budget of {budget_point[0]}/day")
    ax.set_xscale("log")
    ax.set_xlabel("queries answered by the victim API")
    ax.set_ylabel("surrogate fidelity (agreement)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Model extraction: fidelity vs queries", fontsize=9)
    run.figure(fig, "fidelity-vs-queries")


def main() -> None:
    digits = load_digits()
    x_all = torch.from_numpy((digits.images / 16.0).astype(np.float32)[:, None]).to(device)
    y_all = torch.from_numpy(digits.target.astype(np.int64)).to(device)
    idx = np.arange(len(y_all))
    # victim's training data | attacker's 30 unlabeled digits | benign users' traffic | evaluation
    idx_victim, idx_rest = train_test_split(idx, train_size=0.5, stratify=digits.target, random_state=run.seed)
    idx_rest, idx_eval = train_test_split(idx_rest, test_size=300, stratify=digits.target[idx_rest], random_state=run.seed)
    idx_attacker, idx_benign = train_test_split(idx_rest, train_size=ATTACKER_SEED_IMAGES, random_state=run.seed)
    victim = train(DigitsCNN().to(device), x_all[idx_victim], y_all[idx_victim], epochs=EPOCHS, seed=run.seed, log=run.log,
                   tag="victim")
    x_eval, seeds = x_all[idx_eval], x_all[idx_attacker]
    with torch.no_grad():
        run.metric("victim_accuracy", (victim(x_eval).argmax(1) == y_all[idx_eval]).float().mean().item())
    run.log("victim.deployed", accuracy=run.metrics["victim_accuracy"], eval_digits=len(idx_eval),
            attacker_seed_images=ATTACKER_SEED_IMAGES)

    # 1. unlimited API: fidelity against the number of queries
    curve = []
    for n in QUERY_STEPS:
        api = PredictionAPI(victim)
        fid, served = extract(api, "attacker", seeds, n, np.random.default_rng(run.seed), victim, x_eval)
        curve.append((served, fid))
        run.log("extraction.result", queries=served, refused=api.refused.get("attacker", 0), fidelity=round(fid, 4))
        run.metric(f"unlimited.by_queries.q_{n}", fid)
    run.metric("unlimited.fidelity", curve[-1][1])
    run.metric("unlimited.queries_served", curve[-1][0])

    # 2. query budget, sized on last week's benign volumes (heavy-tailed, uncapped)
    rng = np.random.default_rng(run.seed + 5)
    last_week = rng.lognormal(np.log(BENIGN_MEDIAN), BENIGN_SIGMA, size=BENIGN_CLIENTS).astype(int) + 1
    budget = int(np.quantile(last_week, BUDGET_QUANTILE))
    run.log("budget.sized", quantile=BUDGET_QUANTILE, clients=len(last_week), budget=budget,
            busiest_last_week=int(last_week.max()))
    # same attacker, same plan (all the queries of the largest step), one key
    api = PredictionAPI(victim, budget=budget)
    fid, served = extract(api, "attacker", seeds, QUERY_STEPS[-1], np.random.default_rng(run.seed), victim, x_eval)
    run.metric("budget.per_client", budget)
    run.metric("budget.fidelity", fid)
    run.metric("budget.queries_served", served)
    run.metric("budget.fidelity_reduction", curve[-1][1] - fid)
    run.metric("budget.attacker_queries_refused", api.refused.get("attacker", 0))
    run.log("extraction.result", budget=budget, queries=served, refused=api.refused.get("attacker", 0),
            fidelity=round(fid, 4))
    benign_x = x_all[idx_benign]
    # today's benign clients: a fresh draw from the same heavy-tailed distribution, each sending
    # natural digits in requests of 10 (a client may resend a digit: volumes exceed the pool)
    volumes = rng.lognormal(np.log(BENIGN_MEDIAN), BENIGN_SIGMA, size=BENIGN_CLIENTS).astype(int) + 1
    for k, v in enumerate(volumes):
        stream = benign_x[torch.from_numpy(rng.integers(0, len(benign_x), size=int(v))).to(device)]
        for i in range(0, len(stream), 10):
            api.predict(f"user-{k}", stream[i : i + 10])
    refused = np.array([api.refused.get(f"user-{k}", 0) for k in range(BENIGN_CLIENTS)])
    run.metric("budget.benign_refusal_rate", float(refused.sum() / volumes.sum()))
    run.metric("budget.benign_clients_limited_rate", float((refused > 0).mean()))
    run.metric("budget.benign_max_daily_queries", int(volumes.max()))
    run.log("budget.benign", clients=BENIGN_CLIENTS, queries=int(volumes.sum()), refused=int(refused.sum()),
            clients_limited=int((refused > 0).sum()), busiest=int(volumes.max()))
    plot(curve, (served, fid))

    # 3. query-pattern monitoring: PRADA on the first MONITOR_WINDOW queries of each active client
    # (a client that never sends that many is never tested, so it can never be a false positive)
    window = MONITOR_WINDOW
    benign_np = benign_x.cpu().numpy()
    active = [benign_np[rng.choice(len(benign_np), size=window, replace=False)] for _ in range(MONITOR_CLIENTS)]
    calib, evalb = active[: MONITOR_CLIENTS // 2], active[MONITOR_CLIENTS // 2 :]
    threshold = float(np.quantile([prada_statistic(s[:window]) for s in calib], MONITOR_FPR))
    benign_w = np.array([prada_statistic(s[:window]) for s in evalb])
    attack_w = np.array([prada_statistic(synthesise(seeds, window, np.random.default_rng(run.seed * 1000 + k)).cpu().numpy())
                         for k in range(ATTACK_CLIENTS)])
    # a held-out attack family the threshold was never shown: Gaussian noise around one seed digit
    # at a time (Papernot-style augmentation without the Jacobian), the same window
    seeds_np = seeds.cpu().numpy()

    def noise_attacker(k: int) -> np.ndarray:
        r = np.random.default_rng(run.seed * 2000 + k)
        base = seeds_np[r.integers(0, len(seeds_np), size=window)]
        return np.clip(base + r.normal(0, 0.15, size=base.shape), 0, 1)

    noise_w = np.array([prada_statistic(noise_attacker(k)) for k in range(ATTACK_CLIENTS)])

    # hard negatives: benign "burst" clients, a camera app that sends 5 photos of its user's digits
    # again and again, each with sensor noise: repetitive, yet no extraction
    def burst_client(k: int) -> np.ndarray:
        r = np.random.default_rng(run.seed * 3000 + k)
        photos = benign_np[r.choice(len(benign_np), size=5, replace=False)]
        base = photos[r.integers(0, 5, size=window)]
        return np.clip(base + r.normal(0, 0.05, size=base.shape), 0, 1)

    burst_w = np.array([prada_statistic(burst_client(k)) for k in range(len(evalb) // 5)])
    run.metric("monitor.window", window)
    run.metric("monitor.threshold", threshold)
    run.metric("monitor.detection_rate", float((attack_w < threshold).mean()))
    run.metric("monitor.false_positive_rate", float((benign_w < threshold).mean()))
    run.metric("monitor.heldout_family_detection_rate", float((noise_w < threshold).mean()))
    run.metric("monitor.hard_negative_false_positive_rate", float((burst_w < threshold).mean()))
    run.metric("monitor.hard_negative_clients", len(burst_w))
    run.metric("monitor.benign_clients_tested", len(benign_w))
    run.metric("monitor.attack_clients", ATTACK_CLIENTS)
    run.log("monitor.result", detector="prada_shapiro_wilk", window=window, threshold=round(threshold, 4),
            attackers_flagged=int((attack_w < threshold).sum()), attackers=ATTACK_CLIENTS,
            benign_flagged=int((benign_w < threshold).sum()), benign=len(benign_w),
            median_w_attack=round(float(np.median(attack_w)), 4), median_w_benign=round(float(np.median(benign_w)), 4),
            heldout_flagged=int((noise_w < threshold).sum()), burst_flagged=int((burst_w < threshold).sum()),
            burst=len(burst_w))
    run.finish()


if __name__ == "__main__":
    main()
