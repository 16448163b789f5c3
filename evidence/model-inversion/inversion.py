"""Model inversion (Fredrikson, Jha, Ristenpart, CCS 2015) against a digits classifier API.

The attacker knows only the input format (8x8 images, pixels in [0, 1]) and the class names. It
starts from a neutral grey image and climbs the target class's confidence as the prediction API
reports it, estimating the gradient from queries alone (antithetic Gaussian finite differences on
the 64 pixels), with box constraints and a smoothness prior it computes locally (no queries). The
white-box variant uses the victim's true gradient with the same prior and step rule: an upper bound.

What the API returns decides what the attacker sees:
    full      the full probability vector
    top1      the top-1 label and its confidence
    rounded   the probability vector rounded to ROUND_DECIMALS
    label     the top-1 label only
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

MODES = ("full", "top1", "rounded", "label")
ROUND_DECIMALS = 1
SIDE = 8
PIXELS = SIDE * SIDE
EPS = 1e-6  # keeps the attacker's log-odds finite when an answer says 0 or 1


class MLP(torch.nn.Module):
    def __init__(self, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(PIXELS, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_mlp(x: np.ndarray, y: np.ndarray, *, epochs: int = 200, hidden: int = 64, weight_decay: float = 1e-4,
              seed: int = 0) -> MLP:
    """A small MLP on flattened 8x8 images in [0, 1], full-batch Adam (deterministic for a seed)."""
    check_images(x, "x")
    torch.manual_seed(seed)
    model = MLP(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    xt = torch.as_tensor(x.reshape(len(x), PIXELS), dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return model.eval()


def check_images(x: np.ndarray, name: str = "images") -> None:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != PIXELS:
        raise ValueError(f"{name} must be (batch, {PIXELS}) flattened 8x8 images, got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite")


def probabilities(model: MLP, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x, dtype=torch.float32)), 1).double().numpy()


@dataclass
class PredictionAPI:
    """The serving endpoint: answers a batch of images in one of MODES and counts every query."""

    model: MLP
    mode: str = "full"
    queries: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown API mode {self.mode!r}: expected one of {', '.join(MODES)}")

    def __call__(self, x: np.ndarray) -> dict:
        check_images(x)
        self.queries += len(x)
        return answer(probabilities(self.model, x), self.mode)


def answer(p: np.ndarray, mode: str) -> dict:
    """What a caller receives for probability rows `p` under `mode`."""
    label = p.argmax(1)
    if mode == "full":
        return {"label": label, "probs": p}
    if mode == "rounded":
        return {"label": label, "probs": np.round(p, ROUND_DECIMALS)}
    if mode == "top1":
        return {"label": label, "confidence": p.max(1)}
    if mode == "label":
        return {"label": label}
    raise ValueError(f"unknown API mode {mode!r}: expected one of {', '.join(MODES)}")


def target_estimate(ans: dict, target: np.ndarray, classes: int = 10) -> np.ndarray:
    """The attacker's best reading of p(target | x) from one answer per row.

    Full or rounded vectors give it directly; top-1 with confidence gives it when the target is
    the top class and otherwise spreads the rest of the mass evenly; a bare label gives 1 or 0.
    """
    label = ans["label"]
    if "probs" in ans:
        return ans["probs"][np.arange(len(label)), target]
    if "confidence" in ans:
        c = ans["confidence"]
        return np.where(label == target, c, (1.0 - c) / (classes - 1))
    return (label == target).astype(np.float64)


def log_odds(p: np.ndarray) -> np.ndarray:
    """The attacker's objective: log p - log(1 - p), kept finite where an answer says 0 or 1."""
    return np.log(p + EPS) - np.log(1.0 - p + EPS)


def smoothness_grad(x: np.ndarray) -> np.ndarray:
    """Gradient of the smoothness prior sum over 4-neighbours (x_i - x_j)^2 for rows of 8x8 images."""
    img = x.reshape(-1, SIDE, SIDE)
    g = np.zeros_like(img)
    dv = img[:, 1:, :] - img[:, :-1, :]
    dh = img[:, :, 1:] - img[:, :, :-1]
    g[:, 1:, :] += 2 * dv
    g[:, :-1, :] -= 2 * dv
    g[:, :, 1:] += 2 * dh
    g[:, :, :-1] -= 2 * dh
    return g.reshape(x.shape)


@dataclass
class Inversion:
    images: np.ndarray          # (runs, 64) reconstructions: the best image each run found
    queries: np.ndarray         # queries each run used
    best_estimate: np.ndarray   # the attacker's reading of p(target) for that image
    steps: np.ndarray           # steps each run took before it stopped


def invert(query, targets: np.ndarray, *, steps: int, directions: int = 20, sigma: float = 0.1, lr: float = 0.1,
           prior: float = 0.05, start: float = 0.5, patience: int = 15, tol: float = 1e-3,
           smoothed: bool = False, rng: np.random.Generator, gradient=None) -> Inversion:
    """Reconstruct one image per entry of `targets`, at most `steps` gradient steps each.

    `query(x) -> dict` is the API (black box): each step costs 2 * directions probe queries plus
    one to read the current image. With `gradient(x, targets) -> d log-odds / dx` given, the attack is
    white-box: the gradient is exact and a step costs the one reading query. Each step:
        x <- clip(x + lr_t * g / |g| - lr_t * prior * smoothness_grad(x), 0, 1),  lr_t decaying to 0.
    A run stops (Fredrikson et al.'s rule) when its best reading of the target's log-odds has not
    improved by `tol` in `patience` steps; it returns the best image it read. The reading is the API's
    answer for x itself, or with `smoothed` the mean answer over the step's probes (no extra queries):
    what a label-only attacker needs, since a bare label stops improving the moment it says "target".
    """
    targets = np.asarray(targets)
    if targets.ndim != 1 or len(targets) == 0:
        raise ValueError(f"targets must be a non-empty 1-d array of class indices, got shape {targets.shape}")
    if steps < 1 or directions < 1:
        raise ValueError(f"steps and directions must be >= 1, got steps={steps}, directions={directions}")
    n = len(targets)
    x = np.full((n, PIXELS), float(start))
    best = x.copy()
    best_s = np.full(n, -np.inf)
    since = np.zeros(n, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    taken = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    def probe(xa: np.ndarray, ta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = rng.standard_normal((len(xa), directions, PIXELS))
        pts = np.concatenate([xa[:, None] + sigma * u, xa[:, None] - sigma * u], 1)
        pts = np.clip(pts, 0.0, 1.0).reshape(-1, PIXELS)
        est = target_estimate(query(pts), np.repeat(ta, 2 * directions)).reshape(len(xa), 2, directions)
        return u, est

    for t in range(steps + 1):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        xa, ta = x[idx], targets[idx]
        if smoothed and gradient is None:
            u, est = probe(xa, ta)
            used[idx] += 2 * directions
            cur = log_odds(est.mean(axis=(1, 2)))
        else:
            cur = log_odds(target_estimate(query(xa), ta))
            used[idx] += 1
        better = cur > best_s[idx] + tol
        since[idx] = np.where(better, 0, since[idx] + 1)
        improved = cur > best_s[idx]
        best[idx[improved]] = xa[improved]
        best_s[idx[improved]] = cur[improved]
        stop = (since[idx] >= patience) | (t == steps)
        active[idx[stop]] = False
        keep = ~stop
        idx, xa, ta = idx[keep], xa[keep], ta[keep]
        if len(idx) == 0:
            break
        if gradient is not None:
            g = gradient(xa, ta)
        else:
            if smoothed:
                u, est = u[keep], est[keep]
            else:
                u, est = probe(xa, ta)
                used[idx] += 2 * directions
            s = log_odds(est)
            g = ((s[:, 0] - s[:, 1])[:, :, None] * u).mean(1) / (2 * sigma)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        step = np.where(norm > 0, g / np.maximum(norm, 1e-12), 0.0)
        lr_t = lr * (1.0 - t / steps)
        x[idx] = np.clip(xa + lr_t * step - lr_t * prior * smoothness_grad(xa), 0.0, 1.0)
        taken[idx] += 1
    return Inversion(best, used, 1.0 / (1.0 + np.exp(-best_s)), taken)


def white_box_gradient(model: MLP):
    """d log-odds(target | x) / dx from the victim's weights: what an insider or a leaked model gives."""
    def grad(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float32).requires_grad_(True)
        z = model(xt)
        t = torch.as_tensor(targets)
        mask = torch.nn.functional.one_hot(t, z.shape[1]).bool()
        odds = z[mask] - torch.logsumexp(z.masked_fill(mask, -torch.inf), 1)
        odds.sum().backward()
        return xt.grad.double().numpy()
    return grad


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows of a and b (0 for a constant row)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-12), 0.0)


def nearest_mean(images: np.ndarray, means: np.ndarray) -> np.ndarray:
    """For each image, the class whose mean image it correlates with most."""
    scores = np.stack([correlation(images, np.repeat(m[None], len(images), 0)) for m in means], 1)
    return scores.argmax(1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(confidence[m].mean() - correct[m].mean())
    return float(ece)


def caller_utility(p: np.ndarray, y: np.ndarray, mode: str, k: int = 3, coverage: float = 0.9) -> dict:
    """What a benign caller can do with the answers under `mode`, on labelled held-out data.

    accuracy: of the returned label; top_k: a correct label among the k the answer ranks first (a
    label-only or top-1 answer ranks one); brier: squared error of the probability vector the caller
    can reconstruct (a label is a one-hot vector; top-1 spreads the rest evenly); ece: calibration
    error of the confidence the caller reads (1.0 for a bare label); error_auroc: how well that
    confidence ranks wrong answers below right ones (0.5 = no information); selective_accuracy: the
    accuracy of the `coverage` share of answers the caller would act on, keeping the most confident
    (with no confidence to rank by, any share: the overall accuracy).
    """
    from sklearn.metrics import roc_auc_score

    ans = answer(p, mode)
    n, classes = p.shape
    label = ans["label"]
    correct = (label == y).astype(float)
    if "probs" in ans:
        q = ans["probs"]
        conf = q[np.arange(n), label]
        ranked = np.argsort(-q, 1, kind="stable")[:, :k]
    elif "confidence" in ans:
        conf = ans["confidence"]
        q = np.repeat(((1 - conf) / (classes - 1))[:, None], classes, 1)
        q[np.arange(n), label] = conf
        ranked = label[:, None]
    else:
        conf = np.ones(n)
        q = np.eye(classes)[label]
        ranked = label[:, None]
    top_k = float(np.mean((ranked == y[:, None]).any(1)))
    brier = float(np.mean(((q - np.eye(classes)[y]) ** 2).sum(1)))
    auroc = float(roc_auc_score(correct, conf)) if 0 < correct.sum() < n and np.ptp(conf) > 0 else 0.5
    if np.ptp(conf) > 0:
        keep = np.argsort(-conf, kind="stable")[: max(1, int(round(coverage * n)))]
        selective = float(correct[keep].mean())
    else:
        selective = float(correct.mean())
    return {"accuracy": float(correct.mean()), "top_k": top_k, "brier": brier,
            "ece": expected_calibration_error(conf, correct), "error_auroc": auroc, "selective_accuracy": selective}
