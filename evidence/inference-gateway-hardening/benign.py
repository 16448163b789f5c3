"""Benign clients of the hardened gateway, with the traffic shape real API users have.

Each client holds its own key on the standard tier and works in sessions: sequential requests with
exponential think times, page loads that fire several requests at once, batches of one to eight
rows, and a total volume drawn from a heavy-tailed (log-normal) distribution, so a few heavy users
come close to their budget. Nothing here is clipped to the gateway's limits: whatever the limits
refuse is the cost the benign side pays.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

import httpx
import numpy as np


@dataclass(frozen=True)
class BenignClient:
    name: str
    key: str
    requests: int  # how many requests its session makes


def population(rng: random.Random, count: int, median_requests: int) -> list[BenignClient]:
    out = []
    for i in range(count):
        volume = max(5, int(rng.lognormvariate(np.log(median_requests), 0.6)))
        out.append(BenignClient(f"standard-{i:02d}", f"fm-standard-{rng.getrandbits(96):024x}", volume))
    return out


async def _session(client: BenignClient, url: str, pool: np.ndarray, seed: int) -> list[str]:
    rng = random.Random(f"{seed}-{client.name}")
    statuses: list[str] = []  # "200", "refused-rate", "refused-budget", other codes, "error"
    headers = {"content-type": "application/json", "x-api-key": client.key}

    async def one(http: httpx.AsyncClient) -> None:
        rows = [pool[rng.randrange(len(pool))].tolist() for _ in range(rng.randint(1, 8))]
        try:
            reply = await http.post("/v1/predict", content=json.dumps({"instances": rows}), headers=headers)
        except httpx.TransportError:
            statuses.append("error")
            return
        if reply.status_code == 429:  # which limit refused it: the rate limit or the row budget
            budget = "budget" in str(reply.json().get("detail", ""))
            statuses.append("refused-budget" if budget else "refused-rate")
        else:
            statuses.append(str(reply.status_code))

    async with httpx.AsyncClient(base_url=url, timeout=10.0, trust_env=False) as http:
        sent = 0
        while sent < client.requests:
            if rng.random() < 0.15:  # a page load: several widgets ask at once
                fan = min(rng.randint(3, 8), client.requests - sent)
                await asyncio.gather(*(one(http) for _ in range(fan)))
                sent += fan
            else:
                await one(http)
                sent += 1
            await asyncio.sleep(rng.expovariate(1 / 0.08))
    return statuses


async def drive(clients: list[BenignClient], url: str, pool: np.ndarray, seed: int) -> dict[str, list[str]]:
    results = await asyncio.gather(*(_session(c, url, pool, seed) for c in clients))
    return {c.name: r for c, r in zip(clients, results)}
