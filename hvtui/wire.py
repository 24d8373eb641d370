"""The daemon's wire format: JSON lines over a Unix stream socket.

One message per line, a JSON object of at most MAX_MESSAGE bytes (the newline included);
bytes (console output, input, logs) travel base64-encoded. We chose a documented line
protocol over a library: every message is small and typed by its keys, the standard
library has all it needs (json, base64, asyncio streams with a line limit), and a user can
talk to the monitor with `socat - UNIX-CONNECT:$XDG_RUNTIME_DIR/hvtui/monitor.sock`.
msgpack or protobuf would save some bytes and a little CPU at rates we never reach (the
benchmark `hvtui bench api` measures the round trip against an in-process call); gRPC
would bring HTTP/2 and code generation to a single-machine socket.

Client to monitor:
    {"id": 7, "op": "pause", "args": {"name": "c1"}}
Monitor to client, in the order it happened:
    {"id": 7, "ok": true, "result": ...}                      a reply
    {"id": 7, "ok": false, "error": {"type": "StateError", "message": "..."}}
    {"event": {"kind": "changed", "guest": {...}, "previous": "running"}}
    {"console": {"watch": 3, "data": "<base64>"}}               output of a watched console
A line that is not a JSON object with an integer id and a known op gets an error reply
(id null when it had none); a line longer than MAX_MESSAGE gets one and closes the
connection, since the rest of that line cannot be trusted.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hvtui.errors import ConfigError

MAX_MESSAGE = 4 << 20          # bytes of one line (a 1 MiB scrollback in base64 fits)
PROTOCOL = 1


class WireError(ConfigError):
    """A message that is not what the protocol says."""


def encode(message: dict) -> bytes:
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if len(line) > MAX_MESSAGE:
        raise WireError(f"a message of {len(line)} bytes is over the limit of {MAX_MESSAGE}")
    return line


def decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"not JSON: {e}") from None
    if not isinstance(message, dict):
        raise WireError("a message must be a JSON object")
    return message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, where: str = "data") -> bytes:
    if not isinstance(text, str):
        raise WireError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}: not valid base64") from None


# ---- arguments of a request, checked ----
def arg(args: dict, key: str, kind: type, default: Any = ..., where: str = "") -> Any:
    if key not in args:
        if default is ...:
            raise WireError(f"{where or 'request'}: missing argument {key!r}")
        return default
    value = args[key]
    if value is None and default is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise WireError(f"{key}: expected a whole number")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise WireError(f"{key}: expected a number")
    if kind in (str, bool, list, dict) and not isinstance(value, kind):
        raise WireError(f"{key}: expected {kind.__name__}")
    return value
