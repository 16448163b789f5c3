"""Federated averaging of a small MLP, malicious client updates, and robust aggregation rules.

Everything is numpy and vectorised over clients: every client's parameters are one row of a
(clients, P) matrix, and one local-training call trains all of them at once with minibatch SGD
(each client draws its batches from its own padded shard). The server sees only the rows of
the update matrix (client parameters minus the global model), exactly what a federated server
receives, and an aggregation rule turns them into one update.

Model: 64 -> HIDDEN (ReLU) -> 10 softmax MLP, flattened into a parameter vector of length P.
Aggregators: FedAvg (McMahan et al. 2017), coordinate-wise median and trimmed mean (Yin et al.
2018), norm clipping with optional Gaussian noise (Sun et al. 2019), Krum (Blanchard et al. 2017).
Attacks: sign-flipped and scaled updates (untargeted), and a pixel-trigger backdoor trained
locally and either boosted to replace the global model (Bagdasaryan et al. 2020) or kept inside a
norm bound so that its update looks like an honest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_IN, N_OUT = 64, 10
HIDDEN = 32
P = N_IN * HIDDEN + HIDDEN + HIDDEN * N_OUT + N_OUT

# The trigger: four pixels at the left and right edges of rows 3-4, set to full intensity. In the
# digits data these pixels are (almost) always 0, so the trigger is a feature clean data never uses.
TRIGGER_PIXELS = (3 * 8 + 0, 4 * 8 + 0, 3 * 8 + 7, 4 * 8 + 7)
TARGET_CLASS = 0

NORM_FLAG = 2.0  # the server's norm check: flag an update whose L2 norm exceeds 2x the round's median

AGGREGATORS = ("fedavg", "median", "trimmed_mean", "clip", "clip_noise", "krum")
ATTACKS = ("none", "signflip", "backdoor_boost", "backdoor_bounded")


# ----------------------------------------------------------------------------------- model

def init_params(rng: np.random.Generator) -> np.ndarray:
    """He-initialised weights, zero biases, as one flat vector of length P."""
    w1 = rng.normal(0, np.sqrt(2.0 / N_IN), size=(N_IN, HIDDEN))
    w2 = rng.normal(0, np.sqrt(2.0 / HIDDEN), size=(HIDDEN, N_OUT))
    return np.concatenate([w1.ravel(), np.zeros(HIDDEN), w2.ravel(), np.zeros(N_OUT)])


def unflatten(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(..., P) -> W1 (..., 64, H), b1 (..., H), W2 (..., H, 10), b2 (..., 10), as views."""
    if theta.shape[-1] != P:
        raise ValueError(f"parameter vector must have length {P}, got {theta.shape[-1]}")
    lead = theta.shape[:-1]
    a = N_IN * HIDDEN
    b = a + HIDDEN
    c = b + HIDDEN * N_OUT
    return (theta[..., :a].reshape(*lead, N_IN, HIDDEN), theta[..., a:b], theta[..., b:c].reshape(*lead, HIDDEN, N_OUT),
            theta[..., c:])


def logits(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Logits of one model theta (P,) on inputs X (n, 64)."""
    w1, b1, w2, b2 = unflatten(theta)
    return np.maximum(X @ w1 + b1, 0.0) @ w2 + b2


def predict(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.argmax(logits(theta, X), axis=1)


def accuracy(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(theta, X) == y))


def stamp(X: np.ndarray) -> np.ndarray:
    """Inputs with the trigger pattern set to full intensity."""
    out = np.array(X, dtype=np.float64, copy=True)
    out[:, list(TRIGGER_PIXELS)] = 1.0
    return out


def backdoor_success(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Share of test images of the other classes that the model puts in TARGET_CLASS once triggered."""
    keep = y != TARGET_CLASS
    return float(np.mean(predict(theta, stamp(X[keep])) == TARGET_CLASS))


# ----------------------------------------------------------------------------------- data

@dataclass
class Clients:
    """Padded per-client training data: X (K, nmax, 64), y (K, nmax), n (K,)."""

    X: np.ndarray
    y: np.ndarray
    n: np.ndarray

    @property
    def k(self) -> int:
        return len(self.n)

    def subset(self, rows: np.ndarray) -> "Clients":
        return Clients(self.X[rows], self.y[rows], self.n[rows])


def pack(parts: list[tuple[np.ndarray, np.ndarray]]) -> Clients:
    nmax = max(len(y) for _, y in parts)
    X = np.zeros((len(parts), nmax, N_IN))
    y = np.zeros((len(parts), nmax), dtype=np.int64)
    for i, (xi, yi) in enumerate(parts):
        X[i, : len(yi)], y[i, : len(yi)] = xi, yi
    return Clients(X, y, np.array([len(yi) for _, yi in parts]))


def split_iid(X: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator) -> Clients:
    """Shuffle and deal the training set into k near-equal shards."""
    if k < 2 or k > len(y):
        raise ValueError(f"need 2 <= clients <= {len(y)}, got {k}")
    order = rng.permutation(len(y))
    return pack([(X[p], y[p]) for p in np.array_split(order, k)])


def split_label_skew(X: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator, shards_per_client: int = 2) -> Clients:
    """McMahan et al.'s pathological non-IID split: sort by label, cut 2k shards, give each client 2.

    Most clients then hold two digit classes only.
    """
    if k < 2 or k * shards_per_client > len(y):
        raise ValueError(f"need 2 <= clients and clients * shards_per_client <= {len(y)}, got {k} x {shards_per_client}")
    order = np.lexsort((rng.random(len(y)), y))  # by label, ties in random order
    shards = np.array_split(order, k * shards_per_client)
    deal = rng.permutation(len(shards)).reshape(k, shards_per_client)
    return pack([(X[np.concatenate([shards[s] for s in row])], y[np.concatenate([shards[s] for s in row])]) for row in deal])


def poison(clients: Clients, fraction: float, rng: np.random.Generator) -> Clients:
    """Each client's data plus triggered copies of a `fraction` of it, relabelled to TARGET_CLASS."""
    parts = []
    for i in range(clients.k):
        xi, yi = clients.X[i, : clients.n[i]], clients.y[i, : clients.n[i]]
        pick = rng.choice(len(yi), size=max(1, int(round(fraction * len(yi)))), replace=False)
        parts.append((np.concatenate([xi, stamp(xi[pick])]), np.concatenate([yi, np.full(len(pick), TARGET_CLASS)])))
    return pack(parts)


# ----------------------------------------------------------------------------------- local training

@dataclass
class LocalConfig:
    steps: int = 10          # local SGD steps per round
    batch: int = 16
    lr: float = 0.1
    weight_decay: float = 1e-4


def local_train(theta: np.ndarray, clients: Clients, cfg: LocalConfig, rng: np.random.Generator,
                bound: np.ndarray | None = None) -> np.ndarray:
    """Train a copy of the global model theta (P,) on every client's data; return the updates (K, P).

    With `bound` (K,), each client's update is projected back into the L2 ball of that radius
    after every step (projected SGD): how a norm-bounded attacker keeps its update honest-sized.
    """
    k = clients.k
    params = np.tile(theta, (k, 1))
    rows = np.arange(k)[:, None]
    for _ in range(cfg.steps):
        idx = (rng.random((k, cfg.batch)) * clients.n[:, None]).astype(np.int64)
        xb, yb = clients.X[rows, idx], clients.y[rows, idx]                   # (K, B, 64), (K, B)
        w1, b1, w2, b2 = unflatten(params)
        pre = xb @ w1 + b1[:, None, :]                                       # batched over clients
        h = np.maximum(pre, 0.0)
        z = h @ w2 + b2[:, None, :]
        z -= z.max(axis=2, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=2, keepdims=True)
        p[rows, np.arange(cfg.batch)[None, :], yb] -= 1.0
        dz = p / cfg.batch                                                    # dCE/dlogits
        g_w2 = h.transpose(0, 2, 1) @ dz
        g_b2 = dz.sum(axis=1)
        dh = (dz @ w2.transpose(0, 2, 1)) * (pre > 0)
        g_w1 = xb.transpose(0, 2, 1) @ dh
        g_b1 = dh.sum(axis=1)
        grad = np.concatenate([g_w1.reshape(k, -1), g_b1, g_w2.reshape(k, -1), g_b2], axis=1)
        params -= cfg.lr * (grad + cfg.weight_decay * params)
        if bound is not None:
            params = theta + clip_rows(params - theta, bound)
    return params - theta


def clip_rows(D: np.ndarray, bound: np.ndarray | float) -> np.ndarray:
    """Scale each row of D down to L2 norm <= bound (rows already inside are unchanged)."""
    norms = np.linalg.norm(D, axis=1)
    scale = np.minimum(1.0, np.asarray(bound, dtype=np.float64) / np.maximum(norms, 1e-12))
    return D * scale[:, None]


# ----------------------------------------------------------------------------------- aggregation

@dataclass
class AggInfo:
    """What the server can log about one aggregation."""

    clipped: int = 0
    selected: int = -1
    bound: float = 0.0


def aggregate(name: str, D: np.ndarray, f: int, rng: np.random.Generator, noise: float = 0.0) -> tuple[np.ndarray, AggInfo]:
    """One aggregated update from the client updates D (K, P); f: attackers the rule is sized for.

    fedavg: mean. median: coordinate-wise median. trimmed_mean: per coordinate, drop the f largest
    and f smallest values and average the rest. clip: scale every update to at most the round's
    median update norm, then average. clip_noise: clip, then add Gaussian noise of standard
    deviation noise * bound / K per coordinate to the mean (weak differential privacy).
    krum: the single update with the smallest sum of squared distances to its K - f - 2 nearest
    neighbours.
    """
    if D.ndim != 2:
        raise ValueError(f"updates must be a (clients, parameters) matrix, got shape {D.shape}")
    k = D.shape[0]
    info = AggInfo()
    if name == "fedavg":
        return D.mean(axis=0), info
    if name == "median":
        return np.median(D, axis=0), info
    if name == "trimmed_mean":
        if k <= 2 * f:
            raise ValueError(f"trimmed_mean needs more than 2f = {2 * f} clients, got {k}")
        s = np.sort(D, axis=0)
        return s[f: k - f].mean(axis=0), info
    if name in ("clip", "clip_noise"):
        norms = np.linalg.norm(D, axis=1)
        bound = float(np.median(norms))
        info.bound, info.clipped = bound, int(np.sum(norms > bound + 1e-12))
        mean = clip_rows(D, bound).mean(axis=0)
        if name == "clip_noise":
            mean = mean + rng.normal(0.0, noise * bound / k, size=mean.shape)
        return mean, info
    if name == "krum":
        m = k - f - 2
        if m < 1:
            raise ValueError(f"krum needs clients > f + 2 = {f + 2}, got {k}")
        sq = np.sum(D * D, axis=1)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2 * D @ D.T, 0.0)
        np.fill_diagonal(dist, np.inf)
        scores = np.sort(dist, axis=1)[:, :m].sum(axis=1)
        info.selected = int(np.argmin(scores))
        return D[info.selected].copy(), info
    raise ValueError(f"unknown aggregator {name!r}: expected one of {', '.join(AGGREGATORS)}")


def norm_flags(D: np.ndarray, threshold: float = NORM_FLAG) -> np.ndarray:
    """The server's norm check: True for each update whose L2 norm exceeds threshold x the round's median."""
    norms = np.linalg.norm(D, axis=1)
    return norms > threshold * np.median(norms)


# ----------------------------------------------------------------------------------- one federation

@dataclass
class FedConfig:
    rounds: int = 40
    malicious: int = 4            # the first `malicious` clients are the attacker's
    f: int = 4                    # attackers the robust rules are sized for
    flip_scale: float = 4.0       # sign-flip attack: send -flip_scale x the honest update
    poison_fraction: float = 0.5  # backdoor: triggered copies added per local sample
    boost: float | None = None    # backdoor_boost: scale factor (None: clients / malicious)
    noise: float = 1.0            # clip_noise: noise multiplier
    local: LocalConfig = field(default_factory=LocalConfig)


@dataclass
class History:
    accuracy: list[float] = field(default_factory=list)
    backdoor: list[float] = field(default_factory=list)
    rounds_log: list[dict] = field(default_factory=list)
    theta: np.ndarray | None = None
    flagged_malicious: int = 0    # updates the norm check flagged, summed over rounds
    flagged_honest: int = 0
    malicious_updates: int = 0
    honest_updates: int = 0
    krum_malicious_picks: int = 0  # rounds in which Krum kept an attacker's update

    @property
    def norm_flag_malicious_rate(self) -> float:
        return self.flagged_malicious / self.malicious_updates if self.malicious_updates else 0.0

    @property
    def norm_flag_honest_rate(self) -> float:
        return self.flagged_honest / self.honest_updates if self.honest_updates else 0.0


def federate(aggregator: str, attack: str, clients: Clients, test: tuple[np.ndarray, np.ndarray], cfg: FedConfig,
             seed: int, log_at: tuple[int, ...] = ()) -> History:
    """Run cfg.rounds rounds of federated training; return per-round test accuracy and backdoor success.

    `log_at`: 1-based rounds whose server view (update norms, flags, what the rule kept) goes to
    `History.rounds_log`.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: expected one of {', '.join(ATTACKS)}")
    if aggregator not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {aggregator!r}: expected one of {', '.join(AGGREGATORS)}")
    rng = np.random.default_rng(seed)
    theta = init_params(np.random.default_rng(seed + 7919))  # same start for every rule and attack
    X_test, y_test = test
    m = cfg.malicious if attack != "none" else 0
    honest = clients.subset(np.arange(m, clients.k))
    bad = clients.subset(np.arange(m)) if m else None
    bad_poisoned = poison(bad, cfg.poison_fraction, np.random.default_rng(seed + 1)) if m and attack.startswith("backdoor") else None
    boost = cfg.boost if cfg.boost is not None else clients.k / max(m, 1)
    hist = History()
    for r in range(cfg.rounds):
        D_honest = local_train(theta, honest, cfg.local, rng)
        if m:
            if attack == "signflip":
                D_bad = -cfg.flip_scale * local_train(theta, bad, cfg.local, rng)
            elif attack == "backdoor_boost":
                D_bad = boost * local_train(theta, bad_poisoned, cfg.local, rng)
            else:  # backdoor_bounded: the attacker sizes its bound by its own clean update
                ref = np.linalg.norm(local_train(theta, bad, cfg.local, rng), axis=1)
                D_bad = local_train(theta, bad_poisoned, cfg.local, rng, bound=ref)
            D = np.concatenate([D_bad, D_honest])
        else:
            D = D_honest
        norms = np.linalg.norm(D, axis=1)
        flags = norm_flags(D)
        hist.flagged_malicious += int(flags[:m].sum())
        hist.flagged_honest += int(flags[m:].sum())
        hist.malicious_updates += m
        hist.honest_updates += D.shape[0] - m
        update, info = aggregate(aggregator, D, cfg.f, rng, cfg.noise)
        theta = theta + update
        hist.krum_malicious_picks += int(0 <= info.selected < m)
        hist.accuracy.append(accuracy(theta, X_test, y_test))
        hist.backdoor.append(backdoor_success(theta, X_test, y_test))
        if r + 1 in log_at:
            hist.rounds_log.append({
                "round": r + 1, "aggregator": aggregator, "attack": attack, "clients": int(D.shape[0]),
                "malicious_update_norm_max": round(float(norms[:m].max()), 4) if m else None,
                "honest_update_norm_median": round(float(np.median(norms[m:])), 4),
                "norm_flagged": [int(i) for i in np.flatnonzero(flags)], "clipped": info.clipped, "krum_selected": info.selected,
                "krum_selected_malicious": bool(0 <= info.selected < m) if aggregator == "krum" else None,
                "test_accuracy": round(hist.accuracy[-1], 4), "backdoor_success": round(hist.backdoor[-1], 4)})
    hist.theta = theta
    return hist
