"""The model server (exposed as-is), a pass-through proxy, and the hardened gateway.

- `model_app`: what an inference port looks like when it is exposed directly: no identity, any
  JSON, any batch size, errors surface as 500s from inside the model code.
- `passthrough_app`: a proxy in front of it that forwards everything (a gateway in name only).
- `gateway_app`: authentication (API keys stored as SHA-256 digests, compared in constant time),
  per-client token-bucket rate limits and row budgets, a body size limit and a body read deadline
  enforced before the application sees the request, schema validation (pydantic), an upstream
  timeout, and one structured access-log line per request, rejected ones included.
"""


import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

FEATURES = 64  # 8x8 digits, pixel intensities 0..16

Pixel = Annotated[float, Field(ge=0.0, le=16.0, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=FEATURES, max_length=FEATURES)]


def model_app(model: Any) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        payload = await request.json()
        x = np.asarray(payload["instances"], dtype=float)
        return {"labels": model.predict(x).tolist(), "probabilities": model.predict_proba(x).round(4).tolist()}

    return app


def passthrough_app(upstream: str) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    client = httpx.AsyncClient(base_url=upstream, timeout=30.0, trust_env=False)

    @app.post("/v1/predict")
    async def forward(request: Request) -> JSONResponse:
        reply = await client.post("/predict", content=await request.body(), headers={"content-type": "application/json"})
        return JSONResponse(status_code=reply.status_code, content=_json_or_text(reply))

    return app


def _json_or_text(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return {"detail": reply.text[:200]}


@dataclass(frozen=True)
class ClientPolicy:
    client_id: str
    rate_per_s: float  # token-bucket refill
    burst: int  # bucket size
    row_budget: int  # predictions allowed per budget window (the lab's stand-in for a day)


@dataclass
class GatewaySettings:
    upstream: str
    clients: dict[str, ClientPolicy]  # sha256(api key) hex -> policy
    access_log: Path
    max_body_bytes: int = 16_384
    max_rows: int = 8
    body_read_timeout_s: float = 1.5
    upstream_timeout_s: float = 2.0


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    rows_used: int = 0


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: Annotated[list[Row], Field(min_length=1)]


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass
class _Limiter:
    settings: GatewaySettings
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def identify(self, api_key: str | None) -> ClientPolicy | None:
        if not api_key:
            return None
        digest = key_digest(api_key)
        for known, policy in self.settings.clients.items():
            if hmac.compare_digest(known, digest):
                return policy
        return None

    def take(self, policy: ClientPolicy) -> bool:
        now = time.monotonic()
        with self.lock:
            b = self.buckets.setdefault(policy.client_id, _Bucket(float(policy.burst), now))
            b.tokens = min(policy.burst, b.tokens + (now - b.stamp) * policy.rate_per_s)
            b.stamp = now
            if b.tokens < 1.0:
                return False
            b.tokens -= 1.0
            return True

    def spend_rows(self, policy: ClientPolicy, rows: int) -> bool:
        with self.lock:
            b = self.buckets[policy.client_id]
            if b.rows_used + rows > policy.row_budget:
                return False
            b.rows_used += rows
            return True


def gateway_app(settings: GatewaySettings) -> Callable[..., Awaitable[None]]:
    limiter = _Limiter(settings)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    upstream = httpx.AsyncClient(base_url=settings.upstream, timeout=settings.upstream_timeout_s, trust_env=False)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One short reason; FastAPI's default echoes the whole input back to the caller.
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[:3])
        return JSONResponse(status_code=422, content={"detail": f"invalid request at {where}: {first.get('msg', 'invalid')}"})

    async def caller(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> ClientPolicy:
        # A dependency: FastAPI runs it before validating the body, so strangers learn nothing of the schema.
        policy = limiter.identify(x_api_key)
        if policy is None:
            raise HTTPException(401, "missing or unknown API key")
        request.scope["state"]["client"] = policy.client_id
        if not limiter.take(policy):
            raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": "1"})
        return policy

    @app.post("/v1/predict")
    async def predict(body: PredictRequest, request: Request, policy: Annotated[ClientPolicy, Depends(caller)]) -> dict[str, Any]:
        rows = len(body.instances)
        request.scope["state"]["rows"] = rows
        if rows > settings.max_rows:
            raise HTTPException(413, f"at most {settings.max_rows} instances per request")
        if not limiter.spend_rows(policy, rows):
            raise HTTPException(429, "query budget exhausted")
        try:
            reply = await upstream.post("/predict", json={"instances": body.instances})
        except httpx.TimeoutException:
            raise HTTPException(504, "model timed out") from None
        except httpx.HTTPError:
            raise HTTPException(502, "model unavailable") from None
        if reply.status_code != 200:
            raise HTTPException(502, "model error")
        return {"labels": reply.json()["labels"]}  # labels only: no confidence scores to learn from

    return AccessLog(BodyGuard(app, settings.max_body_bytes, settings.body_read_timeout_s), settings.access_log, limiter)


def _detail(body: bytes) -> str:
    """The `detail` of an error response, for the access log's `event.reason`."""
    try:
        detail = json.loads(body).get("detail", "")
    except (ValueError, AttributeError):
        return ""
    return detail.split(" at ")[0] if isinstance(detail, str) else "invalid request"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


async def _respond(send: Callable[..., Awaitable[None]], status: int, detail: str) -> None:
    data = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


class BodyGuard:
    """Reads the whole body (bounded in size and time) before the app runs, then replays it."""

    def __init__(self, app: Any, max_bytes: int, read_timeout_s: float) -> None:
        self.app, self.max_bytes, self.read_timeout_s = app, max_bytes, read_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _respond(send, 413, "request body too large")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - loop.time(), 0.0))
            except TimeoutError:
                await _respond(send, 408, "request body not received in time")
                return
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _respond(send, 413, "request body too large")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class AccessLog:
    """One JSON line per request (ECS field names), whatever layer answered it."""

    def __init__(self, app: Any, path: Path, limiter: _Limiter) -> None:
        self.app, self.path, self.limiter = app, path, limiter
        self.lock = threading.Lock()
        self.lines = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        start = time.perf_counter()
        status = 500

        reason = ""

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status, reason
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status >= 400 and not reason and message.get("body"):
                reason = _detail(message["body"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"0")
            policy = self.limiter.identify(headers.get(b"x-api-key", b"").decode("latin-1"))
            record = {
                "@timestamp": _iso(time.time()),
                "event": {"dataset": "gateway.access", "duration": int((time.perf_counter() - start) * 1e9),
                          "outcome": "success" if status < 400 else "failure", "reason": reason},
                "source": {"ip": (scope.get("client") or ["", 0])[0]},
                "user": {"name": policy.client_id if policy else "anonymous"},
                "http": {"request": {"method": scope["method"], "bytes": int(length) if length.isdigit() else -1},
                         "response": {"status_code": status}},
                "url": {"path": scope["path"]},
                "labels": {"rows": scope["state"].get("rows", 0)},
            }
            with self.lock:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                self.lines += 1


class Served:
    """A uvicorn server on a pre-bound loopback socket, in a thread of this process."""

    def __init__(self, app: Any, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{self.name} server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
