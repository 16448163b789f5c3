"""Resize methods as linear operators, the image-scaling attack, and the preprocessing controls.

Every downscaler measured here (torch `F.interpolate` and Pillow's resample filters) is separable
and linear: downscaling a square image X is L @ X @ L.T for an (out, in) matrix L. The attack only
needs L; it never looks inside the resize implementation.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Resize = Callable[[np.ndarray, int], np.ndarray]  # (batch, n, n) float in [0, 1] -> (batch, m, m)


def _torch(mode: str, antialias: bool = False) -> Resize:
    def resize(images: np.ndarray, size: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float64))[:, None]
        kwargs = {} if mode in ("nearest", "area") else {"align_corners": False, "antialias": antialias}
        return F.interpolate(x, size=(size, size), mode=mode, **kwargs)[:, 0].numpy()

    return resize


def _pillow(name: str) -> Resize:
    def resize(images: np.ndarray, size: int) -> np.ndarray:
        from PIL import Image

        flt = getattr(Image.Resampling, name)
        return np.stack([np.asarray(Image.fromarray(np.asarray(im, dtype=np.float32), mode="F").resize((size, size), flt),
                                    dtype=np.float64) for im in images])

    return resize


# name -> (resize function, does it low-pass filter before sampling?)
METHODS: dict[str, tuple[Resize, bool]] = {
    "torch_nearest": (_torch("nearest"), False),
    "torch_bilinear": (_torch("bilinear", antialias=False), False),
    "torch_bicubic": (_torch("bicubic", antialias=False), False),
    "torch_bilinear_antialias": (_torch("bilinear", antialias=True), True),
    "torch_area": (_torch("area"), True),
    "pillow_nearest": (_pillow("NEAREST"), False),
    "pillow_bilinear": (_pillow("BILINEAR"), True),
    "pillow_box": (_pillow("BOX"), True),
}


def operator(resize: Resize, n: int, m: int) -> np.ndarray:
    """The (m, n) matrix L with resize(X) == L @ X @ L.T, read off by resizing column indicators.

    An image whose column j is all ones resizes to (L @ 1)(L[:, j])^T; every row of L sums to 1
    for these normalised filters, so any output row is L[:, j].
    """
    basis = np.zeros((n, n, n))
    for j in range(n):
        basis[j, :, j] = 1.0
    out = resize(basis, m)  # (n, m, m)
    return out[:, m // 2, :].T.copy()


def apply(L: np.ndarray, images: np.ndarray) -> np.ndarray:
    """L @ X @ L.T for every image X of the batch."""
    return L @ images @ L.T


def linearity_error(resize: Resize, L: np.ndarray, images: np.ndarray) -> float:
    """Largest gap between the real resize and L @ X @ L.T: the attack's model of the pipeline."""
    return float(np.max(np.abs(resize(images, L.shape[0]) - apply(L, images))))


def craft(L: np.ndarray, source: np.ndarray, target: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Smallest change to `source` (batch, n, n) whose downscale by L is `target` (batch, m, m).

    Alternating projections: the minimum-norm correction onto {X : L X L^T = target}
    (X += L+ (target - L X L^T) L+^T), then back into the valid pixel range [0, 1].
    """
    if source.ndim != 3 or source.shape[1:] != (L.shape[1], L.shape[1]):
        raise ValueError(f"source must be (batch, {L.shape[1]}, {L.shape[1]}), got {source.shape}")
    if target.shape != (source.shape[0], L.shape[0], L.shape[0]):
        raise ValueError(f"target must be ({source.shape[0]}, {L.shape[0]}, {L.shape[0]}), got {target.shape}")
    P = np.linalg.pinv(L)
    x = source.copy()
    for _ in range(iterations):
        x = np.clip(x + apply(P, target - apply(L, x)), 0.0, 1.0)
    return x


def within_budget(source: np.ndarray, attack: np.ndarray, min_psnr_db: float) -> np.ndarray:
    """Shrink each attack's change towards its source until the image keeps PSNR >= min_psnr_db."""
    delta = attack - source
    mse = np.mean(delta ** 2, axis=(1, 2))
    allowed = 10 ** (-min_psnr_db / 10)  # pixel range is 1
    scale = np.minimum(1.0, np.sqrt(allowed / np.maximum(mse, 1e-12)))
    return source + delta * scale[:, None, None]


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = np.mean((a - b) ** 2, axis=(1, 2))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


class ScalingCheck:
    """Flag an image whose pipeline downscale disagrees with a robust (area) downscale.

    The threshold is the `percentile`-th percentile of the gap on benign calibration images.
    """

    def __init__(self, pipeline: np.ndarray, robust: np.ndarray, calibration: np.ndarray, percentile: float = 99.0):
        self.pipeline, self.robust = pipeline, robust
        self.threshold = float(np.percentile(self.gap(calibration), percentile))

    def gap(self, images: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean((apply(self.pipeline, images) - apply(self.robust, images)) ** 2, axis=(1, 2)))

    def flags(self, images: np.ndarray) -> np.ndarray:
        return self.gap(images) > self.threshold


def preprocess(images: np.ndarray, L: np.ndarray, normalise: str) -> np.ndarray:
    """The one preprocessing function shared by training and serving: resize, then normalise."""
    small = apply(L, images).reshape(len(images), -1)
    if normalise == "unit":
        return small
    if normalise == "standard":
        return (small - 0.5) / 0.25
    if normalise == "bytes":
        return small * 255.0
    raise ValueError(f"unknown normalisation {normalise!r}: expected unit, standard or bytes")


def parity(train_fn: Callable[[np.ndarray], np.ndarray], serve_fn: Callable[[np.ndarray], np.ndarray],
           fixture: np.ndarray, tolerance: float = 1e-3) -> float:
    """CI parity test: the largest gap between training and serving features on a fixture batch.

    Returns the gap; a gap above `tolerance` fails the test (the caller raises or logs).
    """
    return float(np.max(np.abs(train_fn(fixture) - serve_fn(fixture))))
