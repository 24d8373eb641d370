"""Fuzz target: the gdb server's packet parser (atheris, coverage guided). The input is
split into chunks and fed to a PacketReader as a client's bytes; every packet it yields
goes through the command-argument parsers. The reader must never hold more than
MAX_PACKET bytes of a packet, what a packet carries must survive frame() -> feed() ->
unescape() unchanged, and the parsers must answer or raise ProtocolError: any other
exception is a bug.

CI runs it for a bounded time:  python fuzz/gdb_packet_fuzz.py -max_total_time=30
"""
import sys

import atheris

with atheris.instrument_imports():
    from hvtui.gdb import packets as p

SMALL = 64          # a small limit too, so the overflow path is reached quickly


def parse(payload: bytes) -> None:
    c, body = payload[:1], payload[1:]
    try:
        if c in (b"m", b"M"):
            p.parse_span(body.partition(b":")[0])
            if c == b"M":
                p.hex_bytes(body.partition(b":")[2])
        elif c in (b"Z", b"z"):
            p.parse_breakpoint(body)
        elif payload.startswith(b"vCont;"):
            actions = p.parse_vcont(payload[6:], 4)
            assert all(0 <= i < 4 and a in "cs" for i, a in actions.items())
        elif c == b"H":
            p.thread_id(body[1:])
        elif c in (b"p", b"P"):
            p.hex_int(body.partition(b"=")[0], 1 << 16)
        elif c == b"X":
            p.unescape(body)
        else:
            p.hex_int(body)
    except p.ProtocolError:
        pass


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limit = SMALL if fdp.ConsumeBool() else p.MAX_PACKET
    reader = p.PacketReader(limit)
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    pos = 0
    while pos < len(stream):
        n = 1 + stream[pos] % 97
        for kind, payload in reader.feed(stream[pos:pos + n]):
            assert kind in (p.PACKET, p.BAD_CHECKSUM, p.TOO_LONG, p.INTERRUPTED, p.ACK, p.NAK), kind
            assert len(payload) <= limit
            if kind == p.PACKET:
                data = p.unescape(payload)
                wire = p.frame(data)
                if len(wire) <= limit + 4:
                    (again_kind, again), = p.PacketReader(limit).feed(wire)
                    assert again_kind == p.PACKET and p.unescape(again) == data, (payload, again)
                parse(payload)
        assert len(reader._data) <= limit
        pos += n


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
