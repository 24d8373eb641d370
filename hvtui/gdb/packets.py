"""The GDB remote serial protocol's framing: `$data#cs` packets, acks, the interrupt
byte, `}` escapes; and the hex helpers the commands use.

PacketReader turns the bytes a client sends into events and never holds more than
MAX_PACKET bytes of one packet: a longer one is skipped to its end and reported as
too long, a bad checksum as such, bytes outside packets are dropped. Nothing it is fed can
make it raise.
"""
from __future__ import annotations

MAX_PACKET = 0x4000          # bytes of packet data we accept (qSupported's PacketSize)
INTERRUPT = 0x03             # Ctrl-C, outside any packet

# events: (kind, payload)
PACKET, BAD_CHECKSUM, TOO_LONG, INTERRUPTED, ACK, NAK = "packet", "bad-checksum", "too-long", "interrupt", "+", "-"


class ProtocolError(ValueError):
    """A command a client sent that does not parse (answered with an error reply)."""


class PacketReader:
    """Bytes in, (kind, payload) events out. States: between packets, in the data, at
    the first and at the second checksum digit."""

    def __init__(self, max_packet: int = MAX_PACKET):
        self.max_packet = max_packet
        self._state = "idle"
        self._data = bytearray()
        self._sum = 0
        self._overflow = False
        self._cs = 0

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        events: list[tuple[str, bytes]] = []
        for b in chunk:
            state = self._state
            if state == "idle":
                if b == 0x24:                  # '$'
                    self._data.clear()
                    self._sum, self._overflow, self._state = 0, False, "data"
                elif b == INTERRUPT:
                    events.append((INTERRUPTED, b""))
                elif b == 0x2B:
                    events.append((ACK, b""))
                elif b == 0x2D:
                    events.append((NAK, b""))
                # anything else between packets is noise: dropped
            elif state == "data":
                if b == 0x23:                  # '#'
                    self._state = "cs1"
                elif b == 0x24:                # '$' inside a packet: the old one was cut off
                    events.append((BAD_CHECKSUM, b""))
                    self._data.clear()
                    self._sum, self._overflow = 0, False
                else:
                    self._sum = (self._sum + b) & 0xFF
                    if len(self._data) < self.max_packet:
                        self._data.append(b)
                    else:
                        self._overflow = True
            elif state == "cs1":
                digit = _hexval(b)
                self._cs, self._state = (digit if digit is not None else -256) << 4, "cs2"
            else:                               # cs2
                digit = _hexval(b)
                cs = self._cs | digit if digit is not None else -1
                self._state = "idle"
                if self._overflow:
                    events.append((TOO_LONG, b""))
                elif cs != self._sum:
                    events.append((BAD_CHECKSUM, b""))
                else:
                    events.append((PACKET, bytes(self._data)))
                self._data.clear()
        return events


def _hexval(b: int) -> int | None:
    if 0x30 <= b <= 0x39:
        return b - 0x30
    if 0x61 <= b <= 0x66:
        return b - 0x57
    if 0x41 <= b <= 0x46:
        return b - 0x37
    return None


_ESCAPED = frozenset(b"$#}*")


def frame(payload: bytes) -> bytes:
    """$payload#cs, with $ # } * escaped as } followed by the byte xor 0x20."""
    body = bytearray()
    for b in payload:
        if b in _ESCAPED:
            body += bytes((0x7D, b ^ 0x20))
        else:
            body.append(b)
    return b"$" + bytes(body) + b"#%02x" % (sum(body) & 0xFF)


def unescape(data: bytes) -> bytes:
    """The binary data of an X or vFile packet: } escapes undone."""
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == 0x7D and i + 1 < len(data):
            out.append(data[i + 1] ^ 0x20)
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def hex_int(text: bytes | str, limit: int = 1 << 64) -> int:
    """A hex number below limit (addresses, lengths, thread ids), or ProtocolError."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not text or len(text) > 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ProtocolError(f"not a hex number: {text[:20]!r}")
    value = int(text, 16)
    if value >= limit:
        raise ProtocolError(f"{text} is out of range")
    return value


def hex_bytes(text: bytes) -> bytes:
    """Bytes from their hex digits, or ProtocolError."""
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("malformed hex data") from None


def thread_id(text: bytes) -> int:
    """A thread-id: -1 (all), 0 (any) or a positive number (vCPU index + 1)."""
    if text == b"-1":
        return -1
    return hex_int(text, 1 << 32)


# ---- command arguments (pure: the fuzz target runs them on whatever it finds) ----
def parse_span(text: bytes) -> tuple[int, int]:
    """ADDR,LENGTH of an m or M packet."""
    addr, sep, length = text.partition(b",")
    if not sep:
        raise ProtocolError("expected ADDR,LENGTH")
    return hex_int(addr), hex_int(length)


def parse_breakpoint(body: bytes) -> tuple[int, int, int]:
    """TYPE,ADDR,KIND of a Z or z packet (conditions after ';' are ignored)."""
    fields = body.split(b";", 1)[0].split(b",")
    if len(fields) != 3:
        raise ProtocolError("expected TYPE,ADDR,KIND")
    return hex_int(fields[0], 5), hex_int(fields[1]), hex_int(fields[2], 1 << 16)


def parse_vcont(body: bytes, threads: int) -> dict[int, str]:
    """vCont's actions (after "vCont;") for threads 1..threads, as {index: 'c' or 's'}.
    The leftmost action naming a thread (or all of them) applies to it; threads no action
    names stay stopped. Signals (C, S) are accepted and not delivered."""
    actions: dict[int, str] = {}
    for part in body.split(b";"):
        act, _, tid = part.partition(b":")
        if not act or chr(act[0]) not in "cCsS":
            raise ProtocolError(f"unsupported vCont action {act[:8]!r}")
        if act[:1] in (b"C", b"S"):
            hex_int(act[1:], 256)
        elif len(act) != 1:
            raise ProtocolError(f"malformed vCont action {act[:8]!r}")
        t = thread_id(tid) if tid else -1
        if t > threads:
            raise ProtocolError(f"no thread {t:x}")
        targets = range(threads) if t == -1 else [t - 1 if t > 0 else 0]
        for i in targets:
            actions.setdefault(i, "s" if act[:1] in (b"s", b"S") else "c")
    return actions
