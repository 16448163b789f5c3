"""Who talks to the gateway: benign clients with their everyday mistakes, and four kinds of attacker.

Every client has its own loopback source address (127.0.0.x) and, except the key guessers, its
own API key, so the SIEM sees distinct `source.ip` and `user.name` values. Ground truth (which
client is an attacker) stays here and is only used to score the rules afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

PATH = "/v1/predict"


@dataclass(frozen=True)
class Client:
    name: str  # the gateway's client id (user.name); guessers have none
    kind: str  # benign | bursty | batch | guesser | crawler | flooder | prober
    ip: str
    key: str | None

    @property
    def malicious(self) -> bool:
        return self.kind in ("guesser", "crawler", "flooder", "prober")


def roster(rng: random.Random, benign: int, per_attack: int) -> list[Client]:
    clients: list[Client] = []
    kinds = ["benign"] * (benign - 2) + ["bursty", "batch"]
    kinds += [k for k in ("guesser", "crawler", "flooder", "prober") for _ in range(per_attack)]
    for i, kind in enumerate(kinds):
        key = None if kind == "guesser" else f"fm-{kind}-{rng.getrandbits(80):020x}"
        clients.append(Client(f"{kind}-{i:02d}", kind, f"127.0.0.{10 + i}", key))
    return clients


async def _post(http: httpx.AsyncClient, key: str | None, content: bytes) -> int:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    try:
        return (await http.post(PATH, content=content, headers=headers)).status_code
    except httpx.TransportError:
        return 0


def _rows(pool: np.ndarray, rng: random.Random, n: int) -> bytes:
    picks = [pool[rng.randrange(len(pool))].tolist() for _ in range(n)]
    return json.dumps({"instances": picks}).encode()


async def drive(client: Client, base_url: str, pool: np.ndarray, seed: int, scale: float) -> list[int]:
    """Play one client's session; returns the HTTP statuses it saw."""
    rng = random.Random(f"{seed}-{client.name}")
    transport = httpx.AsyncHTTPTransport(local_address=client.ip)
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10.0, trust_env=False) as http:
        async def send(content: bytes, key: str | None = client.key) -> None:
            statuses.append(await _post(http, key, content))

        if client.kind in ("benign", "bursty", "batch"):
            requests = int(rng.randint(25, 40) * scale) + 2
            for i in range(requests):
                await send(_rows(pool, rng, rng.randint(1, 8 if client.kind == "batch" else 3)))
                await asyncio.sleep(rng.uniform(0.01, 0.05))
            for _ in range(rng.randint(0, 2)):  # everyday mistakes: a stale key, a malformed body
                await send(_rows(pool, rng, 1), key="fm-expired-key")
            for _ in range(rng.randint(0, 2)):
                await send(b'{"instances": [[1, 2, 3]]}')
            if client.kind == "bursty":  # a retry storm after a timeout: some of it gets throttled
                await asyncio.gather(*(send(_rows(pool, rng, 1)) for _ in range(18)))
        elif client.kind == "guesser":
            for i in range(int(30 * scale) + 10):
                await send(_rows(pool, rng, 1), key=f"fm-guess-{rng.getrandbits(64):016x}")
        elif client.kind == "crawler":
            refusals = 0
            for _ in range(200):
                await send(_rows(pool, rng, 8))
                refusals = refusals + 1 if statuses[-1] == 429 else 0
                if refusals >= 6:
                    break
                await asyncio.sleep(0.06)  # paced under the rate limit: only the budget stops it
        elif client.kind == "flooder":
            await asyncio.gather(*(send(_rows(pool, rng, 1)) for _ in range(int(100 * scale) + 40)))
        elif client.kind == "prober":
            probes: list[bytes] = [b"not json", b"[]", b'{"instances": "x"}', json.dumps({"instances": [[1e300] * 64]}).encode(),
                                   json.dumps({"instances": [[-1] * 64]}).encode(), _rows(pool, rng, 200)]
            for i in range(int(12 * scale) + 4):
                await send(probes[i % len(probes)])
        else:  # pragma: no cover - roster() only makes the kinds above
            raise ValueError(client.kind)
    return statuses


async def drive_all(clients: list[Client], base_url: str, pool: np.ndarray, seed: int, scale: float) -> dict[str, Any]:
    results = await asyncio.gather(*(drive(c, base_url, pool, seed, scale) for c in clients))
    return {c.name: r for c, r in zip(clients, results)}
