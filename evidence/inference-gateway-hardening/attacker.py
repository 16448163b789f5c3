"""The attacker and the benchmark client: a second process that talks to a target over loopback.

    python attacker.py attack --target URL --path /v1/predict --keys keys.json --pool pool.npy --out result.json
    python attacker.py bench  --target URL --path /v1/predict --keys keys.json --pool pool.npy --out result.json
    python attacker.py all    ...   (both, in one process: the attack first, the benchmark under "bench")

`attack` runs: unauthenticated calls, oversized bodies (declared and chunked), malformed inputs, a
burst, a paced extraction crawl, and a slow-body connection. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

OK = range(200, 300)


def _post(client: httpx.Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body or None); 0 when the server dropped the connection instead of answering."""
    try:
        r = client.post(path, **kwargs)
    except httpx.TransportError:
        return 0, None
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, None


def _row(pool: np.ndarray, i: int) -> list[float]:
    return pool[i % len(pool)].tolist()


def unauthenticated(client: httpx.Client, path: str, pool: np.ndarray, n: int) -> dict[str, int]:
    accepted = 0
    for i in range(n):
        headers = {} if i % 2 == 0 else {"x-api-key": f"guessed-key-{i}"}
        status, _ = _post(client, path, json={"instances": [_row(pool, i)]}, headers=headers)
        accepted += status in OK
    return {"sent": n, "accepted": accepted}


def oversized(client: httpx.Client, path: str, key: str, pool: np.ndarray, rows: int) -> dict[str, Any]:
    body = json.dumps({"instances": [_row(pool, i) for i in range(rows)]}).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must be enforced while reading
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    results = []
    for content in (body, chunked()):
        t0 = time.perf_counter()
        status, _ = _post(client, path, content=content, headers={"x-api-key": key, "content-type": "application/json"})
        results.append({"status": status, "seconds": round(time.perf_counter() - t0, 3)})
    return {"sent": len(results), "bytes": len(body), "accepted": sum(r["status"] in OK for r in results), "responses": results}


def malformed(client: httpx.Client, path: str, key: str, pool: np.ndarray) -> dict[str, Any]:
    row = _row(pool, 0)
    cases: dict[str, bytes] = {
        "not-json": b"instances=1,2,3",
        "json-list": b"[1, 2, 3]",
        "missing-field": b'{"inputs": [[0]]}',
        "short-row": json.dumps({"instances": [row[:10]]}).encode(),
        "strings": json.dumps({"instances": [["a"] * 64]}).encode(),
        "nan": b'{"instances": [[' + b", ".join([b"NaN"] * 64) + b"]]}",
        "huge-values": json.dumps({"instances": [[1e300] * 64]}).encode(),
        "negative": json.dumps({"instances": [[-5.0] * 64]}).encode(),
        "ragged": json.dumps({"instances": [row, row[:32]]}).encode(),
        "deep-nesting": b'{"instances": ' + b"[" * 200 + b"]" * 200 + b"}",
        "extra-field": json.dumps({"instances": [row], "debug": True}).encode(),
        "empty": json.dumps({"instances": []}).encode(),
    }
    statuses = {}
    for name, content in cases.items():
        statuses[name], _ = _post(client, path, content=content, headers={"x-api-key": key, "content-type": "application/json"})
    values = list(statuses.values())
    return {
        "sent": len(values),
        "accepted": sum(s in OK for s in values),
        "server_errors": sum(s >= 500 or s == 0 for s in values),  # 0: the connection died mid-request
        "rejected_4xx": sum(400 <= s < 500 for s in values),
        "statuses": statuses,
    }


async def _burst(base: str, path: str, key: str, pool: np.ndarray, n: int, concurrency: int) -> dict[str, Any]:
    statuses: list[int] = []
    queue = list(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            i = queue.pop()
            try:
                r = await client.post(path, json={"instances": [_row(pool, i)]}, headers={"x-api-key": key})
                statuses.append(r.status_code)
            except httpx.TransportError:
                statuses.append(0)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=10.0, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return {"sent": n, "accepted": sum(s in OK for s in statuses), "throttled": statuses.count(429), "seconds": round(time.perf_counter() - t0, 3)}


def crawl(client: httpx.Client, path: str, key: str, pool: np.ndarray, rate_per_s: float, max_s: float) -> dict[str, Any]:
    """A patient extraction crawl: paced under the rate limit, batches as large as the target allows."""
    batch, cursor, refusals, requests = 64, 0, 0, 0
    xs: list[list[float]] = []
    ys: list[int] = []
    t0 = time.perf_counter()
    while cursor < len(pool) and refusals < 3 and time.perf_counter() - t0 < max_s:
        rows = pool[cursor : cursor + batch].tolist()
        status, body = _post(client, path, json={"instances": rows}, headers={"x-api-key": key})
        requests += 1
        if status in OK and body is not None:
            xs.extend(rows)
            ys.extend(body["labels"])
            cursor += len(rows)
            refusals = 0
        elif status in (0, 413) and batch > 1:
            batch = max(1, batch // 8)  # the target caps batch size: adapt, as a real crawler does
        else:
            refusals += 1
        time.sleep(1.0 / rate_per_s)
    return {"requests": requests, "rows_obtained": len(ys), "rows_wanted": len(pool), "x": xs, "y": ys}


def slow_body(target: str, path: str, key: str, cap_s: float) -> dict[str, Any]:
    """Declare a body, then trickle it: how long does the server hold the connection open?"""
    parts = urlsplit(target)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=cap_s)
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nx-api-key: {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n").encode()
    t0 = time.perf_counter()
    status = None
    try:
        sock.sendall(head)
        sock.settimeout(0.25)
        while time.perf_counter() - t0 < cap_s:
            try:
                data = sock.recv(256)
                if data:
                    status = int(data.split(b" ", 2)[1])
                break
            except TimeoutError:
                try:
                    sock.sendall(b" ")
                except OSError:
                    break
    finally:
        sock.close()
    return {"held_seconds": round(time.perf_counter() - t0, 3), "status": status, "cap_seconds": cap_s}


def attack(args: argparse.Namespace, keys: dict[str, str], pool: np.ndarray) -> dict[str, Any]:
    with httpx.Client(base_url=args.target, timeout=30.0, trust_env=False) as client:
        return {
            "unauthenticated": unauthenticated(client, args.path, pool, 40),
            "oversized": oversized(client, args.path, keys["malicious"], pool, args.oversized_rows),
            "malformed": malformed(client, args.path, keys["malicious"], pool),
            "burst": asyncio.run(_burst(args.target, args.path, keys["burst"], pool, args.burst, 16)),
            "crawl": crawl(client, args.path, keys["crawler"], pool, args.crawl_rate, args.crawl_max_s),
            "slow_body": slow_body(args.target, args.path, keys["malicious"], args.slow_cap_s),
        }


def bench(args: argparse.Namespace, keys: dict[str, str], pool: np.ndarray) -> dict[str, Any]:
    latencies = []
    with httpx.Client(base_url=args.target, timeout=10.0, trust_env=False) as client:
        for i in range(5):  # warm the connection and the model
            client.post(args.path, json={"instances": [_row(pool, i)]}, headers={"x-api-key": keys["bench"]})
        for i in range(args.bench_requests):
            t0 = time.perf_counter()
            r = client.post(args.path, json={"instances": [_row(pool, i)]}, headers={"x-api-key": keys["bench"]})
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"bench request failed with HTTP {r.status_code}")
    quantiles = statistics.quantiles(latencies, n=20)
    burst = asyncio.run(_burst(args.target, args.path, keys["bench"], pool, args.bench_requests, 8))
    return {"p50_ms": statistics.median(latencies), "p95_ms": quantiles[18], "requests": len(latencies),
            "throughput_rps": burst["accepted"] / burst["seconds"], "throughput_ok": burst["accepted"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["attack", "bench", "all"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--keys", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--oversized-rows", type=int, default=20_000)
    parser.add_argument("--crawl-rate", type=float, default=12.0)
    parser.add_argument("--crawl-max-s", type=float, default=10.0)
    parser.add_argument("--slow-cap-s", type=float, default=4.0)
    parser.add_argument("--bench-requests", type=int, default=200)
    args = parser.parse_args()
    keys = json.loads(args.keys.read_text())
    pool = np.load(args.pool)
    result: dict[str, Any] = attack(args, keys, pool) if args.mode in ("attack", "all") else {}
    if args.mode in ("bench", "all"):
        benchmark = bench(args, keys, pool)
        result = {**result, "bench": benchmark} if args.mode == "all" else benchmark
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
