"""Snapshot files edited the way an attacker would: the state section rewritten and every
checksum recomputed, so that only the schema and the devices' own checks stand between
the file and the monitor."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import zlib

from hvtui.vmm import snapshot


def _header(data: bytes) -> tuple:
    return snapshot.HEADER.unpack_from(data)


def state_of(path) -> dict:
    """The state section as plain JSON (bytes still {"$b64": ...})."""
    data = open(path, "rb").read()
    (_, _, _, state_off, state_len, *_rest) = _header(data)
    return json.loads(data[state_off:state_off + state_len])


def b64(data: bytes) -> dict:
    return {"$b64": base64.b64encode(data).decode()}


def unb64(obj) -> bytes:
    return base64.b64decode(obj["$b64"])


def rebuild(src, dst, state_bytes: bytes) -> None:
    """dst = src with its state section replaced by state_bytes: sections moved to where
    the new length puts them, checksums and header CRC recomputed (a well-formed file)."""
    data = open(src, "rb").read()
    (magic, version, _, state_off, state_len, mem_off, mem_len, map_off, map_len,
     _, map_sum, sums_off, sums_len, sums_sum, _, _) = _header(data)
    memory, page_map = data[mem_off:mem_off + mem_len], data[map_off:map_off + map_len]
    sums = data[sums_off:sums_off + sums_len]
    new_mem_off = -(-(snapshot.PAGE + len(state_bytes)) // snapshot.PAGE) * snapshot.PAGE
    header = bytearray(snapshot.PAGE)
    new_map_off = new_mem_off + mem_len
    snapshot.HEADER.pack_into(header, 0, magic, version, 0, snapshot.PAGE, len(state_bytes), new_mem_off, mem_len,
                              new_map_off, map_len, hashlib.sha256(state_bytes).digest(), map_sum,
                              new_map_off + map_len, sums_len, sums_sum, 0, 0)
    struct.pack_into("<I", header, snapshot.HEADER_CRC_AT, zlib.crc32(header))
    out = bytes(header) + state_bytes
    out += bytes(new_mem_off - len(out)) + memory + page_map + sums
    with open(dst, "wb") as f:
        f.write(out)


def edited(src, dst, edit) -> None:
    """dst = src with edit(state) applied to its decoded state (JSON objects, bytes as
    {"$b64": ...}); edit may return a replacement (any JSON value) or edit in place."""
    state = state_of(src)
    result = edit(state)
    if result is not None:
        state = result
    rebuild(src, dst, json.dumps(state, separators=(",", ":")).encode())


def fill(directory, leave: int) -> None:
    """Fill a filesystem with a file until only about `leave` bytes are free."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(directory, "filler"), "wb") as f:
        f.write(b"\xff" * max(0, free - leave))
