"""Shipping events to the SIEM: ECS JSON (ecs-logging) inside RFC 5424 syslog (rfc5424-logging-handler).

Each event keeps its own time as `@timestamp` (the log record is created with the event's time),
and the forwarder adds `event.ingested`-style bookkeeping in `labels.seq` so that delivery can be
checked message by message.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import ecs_logging
from rfc5424logging import FRAMING_OCTET_COUNTING, Rfc5424SysLogHandler

# log.origin and process say where the *forwarder* ran; the event's origin is in its own fields.
_EXCLUDED = ["log.origin", "process", "log.original", "log.logger"]


class CountingSyslogHandler(Rfc5424SysLogHandler):
    """The library's handler, counting what it handed to the socket and what failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.failed = 0

    def emit(self, record: logging.LogRecord) -> None:
        failed_before = self.failed
        super().emit(record)
        if self.failed == failed_before:
            self.sent += 1

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed += 1


def syslog_handler(port: int, transport: str, app: str) -> CountingSyslogHandler:
    handler = CountingSyslogHandler(
        address=("127.0.0.1", port),
        socktype=socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM,
        framing=FRAMING_OCTET_COUNTING,
        hostname="fm-lab",
        appname=app,
        utc_timestamp=True,
    )
    handler.setFormatter(ecs_logging.StdlibFormatter(exclude_fields=_EXCLUDED))
    return handler


def flatten(event: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def ship(handler: CountingSyslogHandler, event: dict[str, Any], epoch: float, message: str, seq: int) -> None:
    """Send one event with its own timestamp; `seq` lets the receiver side prove nothing was lost."""
    record = logging.LogRecord("fm.siem", logging.INFO, __file__, 0, message, None, None)
    record.created = epoch
    record.msecs = (epoch % 1) * 1000
    fields = flatten({k: v for k, v in event.items() if k != "@timestamp"})
    fields["labels.seq"] = seq
    record.__dict__.update(fields)
    handler.handle(record)
