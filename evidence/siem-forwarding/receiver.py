"""A syslog receiver on loopback: RFC 5424 messages over TCP (RFC 6587 octet counting) and UDP.

It stands in for the SIEM's collector. Each message's MSG part is an ECS JSON document; the
receiver keeps the parsed events, counts what it could not parse, and never trusts a frame length
beyond `max_frame` bytes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from rfc5424 import ParseError, parse


@dataclass
class Inbox:
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, frame: bytes, transport: str) -> None:
        try:
            message = parse(frame.decode("utf-8"))
            event = json.loads(message.msg.lstrip("\ufeff"))  # RFC 5424 marks UTF-8 MSG with a BOM
        except (ParseError, UnicodeDecodeError, ValueError):
            with self.lock:
                self.bad_frames += 1
            return
        event["_syslog"] = {"transport": transport, "app": message.appname, "severity": message.severity}
        with self.lock:
            self.events.append(event)

    def count(self, transport: str | None = None) -> int:
        with self.lock:
            return sum(1 for e in self.events if transport is None or e["_syslog"]["transport"] == transport)

    def take(self, transport: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["_syslog"]["transport"] == transport]

    def clear(self) -> None:
        with self.lock:
            self.events.clear()
            self.bad_frames = 0


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.accept(data, "udp")


class SyslogReceiver:
    """TCP and UDP listeners on 127.0.0.1 (ephemeral ports) in a thread with its own event loop."""

    def __init__(self, max_frame: int = 65_536, udp_buffer: int = 4 * 1024 * 1024) -> None:
        self.inbox = Inbox()
        self.max_frame = max_frame
        self.udp_buffer = udp_buffer
        self.tcp_port = 0
        self.udp_port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SyslogReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("syslog receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._tcp_client, "127.0.0.1", 0)
        self.tcp_port = server.sockets[0].getsockname()[1]
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _Udp(self.inbox), local_addr=("127.0.0.1", 0))
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.udp_buffer)
        self.udp_port = sock.getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            transport.close()
            server.close()
            for writer in list(self._clients.values()):
                writer.close()  # the handlers see end-of-stream and return on their own
            await asyncio.gather(*self._clients, return_exceptions=True)
            await server.wait_closed()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, repeated."""
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while True:
                head = await reader.readuntil(b" ")
                length = int(head[:-1])
                if not 0 < length <= self.max_frame:
                    self.inbox.bad_frames += 1
                    break  # a lying length: the stream cannot be re-synchronised, drop the connection
                self.inbox.accept(await reader.readexactly(length), "tcp")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            self._clients.pop(task, None)
            writer.close()
