"""A strict parser for RFC 5424 syslog messages (the receiving side of the pipeline).

The sending side uses the maintained `rfc5424-logging-handler`; the Python parsers on PyPI are
unmaintained and pull an old grammar library, so the receiver parses the header itself. The
grammar is short: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
STRUCTURED-DATA [SP MSG]`, where STRUCTURED-DATA is `-` or one or more `[id name="value" ...]`
elements whose values escape `"`, `\\` and `]` with a backslash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S{1,255}) "
    r"(?P<app>\S{1,48}) (?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) "
)
_SD_NAME = re.compile(r'[^= \]"]{1,32}')


class ParseError(ValueError):
    """The frame is not an RFC 5424 message."""


@dataclass(frozen=True)
class SyslogMessage:
    facility: int
    severity: str
    timestamp: str
    hostname: str
    appname: str
    procid: str
    msgid: str
    structured_data: dict[str, dict[str, str]]
    msg: str


def parse(text: str) -> SyslogMessage:
    m = _HEADER.match(text)
    if m is None:
        raise ParseError("not an RFC 5424 header")
    pri = int(m["pri"])
    if pri > 191:
        raise ParseError(f"priority {pri} out of range")
    sd, rest = _structured_data(text, m.end())
    if rest and not rest.startswith(" "):
        raise ParseError("structured data not followed by a space")
    return SyslogMessage(pri // 8, SEVERITIES[pri % 8], m["timestamp"], m["hostname"], m["app"], m["procid"],
                         m["msgid"], sd, rest[1:] if rest else "")


def _structured_data(text: str, i: int) -> tuple[dict[str, dict[str, str]], str]:
    if text.startswith("-", i):
        return {}, text[i + 1 :]
    elements: dict[str, dict[str, str]] = {}
    while text.startswith("[", i):
        name = _SD_NAME.match(text, i + 1)
        if name is None:
            raise ParseError("structured data element without an id")
        params: dict[str, str] = {}
        i = name.end()
        while text.startswith(" ", i):
            key = _SD_NAME.match(text, i + 1)
            if key is None or not text.startswith('="', key.end()):
                raise ParseError("malformed structured data parameter")
            i, value = _quoted(text, key.end() + 2)
            params[key.group()] = value
        if not text.startswith("]", i):
            raise ParseError("structured data element not closed")
        elements[name.group()] = params
        i += 1
    if not elements:
        raise ParseError("structured data is neither '-' nor an element")
    return elements, text[i:]


def _quoted(text: str, i: int) -> tuple[int, str]:
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\]':
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return i + 1, "".join(out)
        else:
            out.append(ch)
            i += 1
    raise ParseError("unterminated parameter value")
