"""The digits lab: data, the victim CNN, training, and the two white-box attacks.

Shared by the evasion modules (evasion-fgsm-pgd, adversarial-training, adversarial-input-detection,
robustness-ci-gate), which declare this file in their `module.toml` `inputs`, so that every one of
them attacks exactly the same model with exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

Adversary = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Logger = Callable[..., Any]


class DigitsCNN(nn.Module):
    """Two small convolutions and two dense layers: about 97% on 8x8 digits in seconds of CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations (used by detectors that look inside the model)."""
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


def load_split(seed: int, device: torch.device, test_size: float = 0.3) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled digits as (n, 1, 8, 8) tensors in [0, 1], split stratified by seed."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    return tuple(torch.from_numpy(a).to(device) for a in (x_tr, y_tr, x_te, y_te))


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    log: Logger,
    adversary: Adversary | None = None,
    tag: str = "train",
) -> nn.Module:
    """Minibatch Adam. With an `adversary`, each batch is replaced by its adversarial version
    (Madry-style adversarial training: minimise the loss at the worst point of the eps-ball)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        total = 0.0
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            xb, yb = x[idx], y[idx]
            if adversary is not None:
                model.eval()  # craft against the current weights without touching training state
                xb = adversary(model, xb, yb)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"{tag}.epoch", epoch=epoch, loss=round(total / len(x), 4))
    model.eval()
    return model


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps: the cheapest white-box attack."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int) -> torch.Tensor:
    """Projected gradient descent from a random start: FGSM iterated, projected back into the ball."""
    if eps == 0:
        return x.clone()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    alpha = 2.5 * eps / steps
    adv = (x + (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) == y).float().mean().item()
