"""Two tenants in one serving process: residual tensors, and a shared result cache.

Worker functions run in child processes forked from a clean forkserver (torch and numpy
imported, no tenant data), so each measurement starts from a heap that holds nothing of
tenant A: any A row that tenant B reads back was left there by A's request in that process.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

HIDDEN = 128
CLASSES = 10


def build_model(weights):
    """The digits MLP (64 -> 128 -> 10) from plain numpy weights."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))
    with torch.no_grad():
        for param, value in zip(model.parameters(), weights):
            param.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
    return model.eval()


def handle_request(model, request: str, zero_on_free: bool = False) -> tuple[list[int], float]:
    """Tenant A's inference request: JSON rows in, predicted classes out.

    The input, hidden activations and logits are torch tensors that die when this returns;
    `zero_on_free` overwrites them first (the zero-on-free control).
    """
    import torch

    rows = json.loads(request)["rows"]
    with torch.no_grad():
        x = torch.tensor(rows, dtype=torch.float32)
        pre = model[0](x)
        h = model[1](pre)
        logits = model[2](h)
        pred = logits.argmax(1).tolist()
        t0 = time.perf_counter()
        if zero_on_free:
            for t in (x, pre, h, logits):
                t.zero_()
        zero_ms = (time.perf_counter() - t0) * 1e3
    return pred, zero_ms


def scan(shapes, zero_on_alloc: bool = False, device: str = "cpu"):
    """Tenant B's read: allocate buffers of the public model's tensor shapes, uninitialised."""
    import torch

    make = torch.zeros if zero_on_alloc else torch.empty
    return [make(s, dtype=torch.float32, device=device) for s in shapes]


def truth_rows(model, request: str, device: str = "cpu") -> dict[str, np.ndarray]:
    """A's tensors recomputed (after B's scan, so nothing of them sits in freed memory before it)."""
    import torch

    rows = json.loads(request)["rows"]
    with torch.no_grad():
        x = torch.tensor(rows, dtype=torch.float32, device=device)
        pre = model[0](x)
        h = model[1](pre)
        logits = model[2](h)
    return {"input": x.cpu().numpy(), "pre_activation": pre.cpu().numpy(), "hidden": h.cpu().numpy(),
            "logits": logits.cpu().numpy()}


def recovered(truth: dict[str, np.ndarray], buffers) -> dict[str, float]:
    """Fraction of A's rows (non-zero ones) found byte-for-byte anywhere in B's buffers."""
    blob = b"".join(b.detach().cpu().numpy().tobytes() for b in buffers)
    out, found_all, total_all = {}, 0, 0
    for name, arr in truth.items():
        rows = [r for r in arr if r.any()]
        found = sum(r.tobytes() in blob for r in rows)
        out[name] = found / len(rows) if rows else 0.0
        found_all += found
        total_all += len(rows)
    out["all"] = found_all / total_all if total_all else 0.0
    return out


def shapes_for(batch: int) -> list[tuple[int, int]]:
    """B's sweep: each tensor shape of the public model's forward pass, four times."""
    return [(batch, 64), (batch, HIDDEN), (batch, HIDDEN), (batch, CLASSES)] * 4


def shared_process_trial(weights, request: str, batch: int, mode: str) -> dict:
    """A then B in one process. mode: none | zero_on_free | zero_on_alloc."""
    if mode not in ("none", "zero_on_free", "zero_on_alloc"):
        raise ValueError(f"unknown mode {mode!r}: expected none, zero_on_free or zero_on_alloc")
    import torch

    torch.set_num_threads(1)
    model = build_model(weights)
    _, zero_ms = handle_request(model, request, zero_on_free=(mode == "zero_on_free"))
    t0 = time.perf_counter()
    bufs = scan(shapes_for(batch), zero_on_alloc=(mode == "zero_on_alloc"))
    scan_ms = (time.perf_counter() - t0) * 1e3
    result = recovered(truth_rows(model, request), bufs)
    return {"recovered": result, "zero_ms": zero_ms, "scan_ms": scan_ms}


def tenant_a_only(weights, request: str) -> dict:
    import torch

    torch.set_num_threads(1)
    model = build_model(weights)
    t0 = time.perf_counter()
    handle_request(model, request)
    return {"a_ms": (time.perf_counter() - t0) * 1e3}


def tenant_b_only(weights, request: str, batch: int) -> dict:
    """B in a fresh worker: scans first, learns A's request (for scoring only) afterwards."""
    import torch

    torch.set_num_threads(1)
    bufs = scan(shapes_for(batch))
    model = build_model(weights)
    return {"recovered": recovered(truth_rows(model, request), bufs)}


def cuda_trial(weights, request: str, batch: int, mode: str) -> dict:
    """The same read on the CUDA caching allocator. mode: none | zero_on_free | empty_cache."""
    import torch

    if mode not in ("none", "zero_on_free", "empty_cache"):
        raise ValueError(f"unknown cuda mode {mode!r}")
    model = build_model(weights).cuda()
    rows = json.loads(request)["rows"]
    with torch.no_grad():
        x = torch.tensor(rows, dtype=torch.float32, device="cuda")
        pre = model[0](x)
        h = model[1](pre)
        logits = model[2](h)
        logits.argmax(1).tolist()
        if mode == "zero_on_free":
            for t in (x, pre, h, logits):
                t.zero_()
        del x, pre, h, logits
    torch.cuda.synchronize()
    if mode == "empty_cache":
        torch.cuda.empty_cache()
    bufs = scan(shapes_for(batch), device="cuda")
    torch.cuda.synchronize()
    return {"recovered": recovered(truth_rows(model, request, device="cuda"), bufs)}


class ResultCache:
    """A serving process's result cache in front of the model; keyed per tenant or shared."""

    def __init__(self, model, per_tenant: bool) -> None:
        self.model = model
        self.per_tenant = per_tenant
        self.store: dict[str, list[int]] = {}
        self.hits = 0
        self.misses = 0

    def key(self, tenant: str, request: str) -> str:
        digest = hashlib.sha256(request.encode()).hexdigest()
        return f"{tenant}:{digest}" if self.per_tenant else digest

    def serve(self, tenant: str, request: str) -> list[int]:
        import torch

        key = self.key(tenant, request)
        if key in self.store:
            self.hits += 1
            return self.store[key]
        self.misses += 1
        rows = json.loads(request)["rows"]
        with torch.no_grad():
            pred = self.model(torch.tensor(rows, dtype=torch.float32)).argmax(1).tolist()
        self.store[key] = pred
        return pred


def timed(cache: ResultCache, tenant: str, request: str) -> float:
    t0 = time.perf_counter()
    cache.serve(tenant, request)
    return (time.perf_counter() - t0) * 1e3


def threshold_from_calibration(miss_ms: list[float], hit_ms: list[float]) -> float:
    """B's own probes: the midpoint between its median miss and median hit latency."""
    if not miss_ms or not hit_ms:
        raise ValueError("calibration needs at least one miss and one hit latency")
    return (float(np.median(miss_ms)) + float(np.median(hit_ms))) / 2.0
