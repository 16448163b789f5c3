"""Who talks to the gateway: benign clients with their everyday mistakes, and eight kinds of attacker.

Two families of attacker exist so that the SIEM thresholds can be fit on one and scored on the
other: the calibration family (key guessing, an extraction crawl, a flood, input probing) and a
held-out family that reaches the same goals differently (credential stuffing with well-formed
keys at a slower pace, a crawl with small batches, floods in short waves, a fuzzer sending
oversized and mistyped bodies). The held-out benign population carries more bursty users.

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
    kind: str  # benign | bursty | batch, or one of CALIBRATION_ATTACKS / HELDOUT_ATTACKS
    ip: str
    key: str | None

    @property
    def malicious(self) -> bool:
        return self.kind in CALIBRATION_ATTACKS + HELDOUT_ATTACKS


CALIBRATION_ATTACKS = ("guesser", "crawler", "flooder", "prober")
HELDOUT_ATTACKS = ("stuffer", "sipper", "waves", "fuzzer")
KEYLESS = ("guesser", "stuffer")  # they do not hold a valid key: every request carries a guess


def roster(rng: random.Random, benign: int, per_attack: int, attacks: tuple[str, ...] = CALIBRATION_ATTACKS,
           bursty: int = 1, first_ip: int = 10, tag: str = "") -> list[Client]:
    """`benign` well-behaved clients (of which `bursty` retry-storm users and one batch user) and attackers."""
    clients: list[Client] = []
    kinds = ["benign"] * (benign - bursty - 1) + ["bursty"] * bursty + ["batch"]
    kinds += [k for k in attacks for _ in range(per_attack)]
    for i, kind in enumerate(kinds):
        key = None if kind in KEYLESS else f"fm-{kind}-{rng.getrandbits(80):020x}"
        clients.append(Client(f"{tag}{kind}-{i:02d}", kind, f"127.0.0.{first_ip + i}", key))
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
            if client.kind == "bursty":  # retry storms after timeouts: some of each gets throttled
                for _ in range(rng.randint(1, 3)):
                    await asyncio.gather(*(send(_rows(pool, rng, 1)) for _ in range(rng.randint(12, 24))))
                    await asyncio.sleep(rng.uniform(0.2, 0.6))
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
        elif client.kind == "stuffer":  # leaked-looking keys in the real format, paced like a person
            for i in range(int(24 * scale) + 8):
                await send(_rows(pool, rng, 1), key=f"fm-benign-{rng.getrandbits(80):020x}")
                await asyncio.sleep(rng.uniform(0.05, 0.15))
        elif client.kind == "sipper":  # small batches, slower: the budget still runs out, later
            refusals = 0
            for _ in range(300):
                await send(_rows(pool, rng, rng.randint(2, 4)))
                refusals = refusals + 1 if statuses[-1] == 429 else 0
                if refusals >= 4:
                    break
                await asyncio.sleep(0.08)
        elif client.kind == "waves":  # short floods with pauses, each wave past the burst allowance
            for _ in range(3):
                await asyncio.gather(*(send(_rows(pool, rng, 1)) for _ in range(int(30 * scale) + 12)))
                await asyncio.sleep(0.5)
        elif client.kind == "fuzzer":  # other malformed shapes than the prober's, oversized bodies
            probes = [json.dumps({"instances": [[0.5] * 63]}).encode(), json.dumps({"instances": [["a"] * 64]}).encode(),
                      json.dumps({"rows": [[0] * 64]}).encode(), _rows(pool, rng, 400), b"{" * 50]
            for i in range(int(10 * scale) + 4):
                await send(probes[rng.randrange(len(probes))])
                await asyncio.sleep(rng.uniform(0.0, 0.05))
        else:  # pragma: no cover - roster() only makes the kinds above
            raise ValueError(client.kind)
    return statuses


async def drive_all(clients: list[Client], base_url: str, pool: np.ndarray, seed: int, scale: float) -> dict[str, Any]:
    results = await asyncio.gather(*(drive(c, base_url, pool, seed, scale) for c in clients))
    return {c.name: r for c, r in zip(clients, results)}
