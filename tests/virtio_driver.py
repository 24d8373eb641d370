"""A test-side virtio-mmio driver over a plain GuestMemory (no KVM): it pokes the
transport's registers the way a guest driver does, so device tests read like the spec."""
from __future__ import annotations

import struct

from hvtui._core import ffi
from hvtui.vmm.devices.virtio import mmio as m
from hvtui.vmm.memory import GuestMemory

RAM = 4 << 20
DESC, AVAIL, USED, DATA = 0x10000, 0x20000, 0x30000, 0x100000


def guest_memory(size: int = RAM) -> GuestMemory:
    buf = ffi.new("char[]", size)
    mem = GuestMemory()
    mem.add(0, size, buf)
    mem._keepalive = buf
    return mem


class Driver:
    def __init__(self, transport: m.VirtioMmio, qsize: int = 16):
        self.t = transport
        self.mem = transport.memory
        self.qsize = qsize
        self.avail_idx = 0
        self.used_seen = 0

    def w(self, reg: int, value: int) -> None:
        self.t.write(reg, 4, value)

    def r(self, reg: int) -> int:
        return self.t.read(reg, 4)

    def init(self, features: int = m.F_VERSION_1, queues: int = 1) -> int:
        self.w(m.R_STATUS, 0)
        self.w(m.R_STATUS, m.S_ACKNOWLEDGE)
        self.w(m.R_STATUS, m.S_ACKNOWLEDGE | m.S_DRIVER)
        for sel in (0, 1):
            self.w(m.R_DRIVER_FEATURES_SEL, sel)
            self.w(m.R_DRIVER_FEATURES, (features >> (32 * sel)) & 0xFFFFFFFF)
        self.w(m.R_STATUS, m.S_ACKNOWLEDGE | m.S_DRIVER | m.S_FEATURES_OK)
        if not self.r(m.R_STATUS) & m.S_FEATURES_OK:
            return self.r(m.R_STATUS)
        for q in range(queues):
            base = q * 0x1000
            self.w(m.R_QUEUE_SEL, q)
            self.w(m.R_QUEUE_NUM, self.qsize)
            self.w(m.R_QUEUE_DESC_LOW, DESC + base)
            self.w(m.R_QUEUE_DRIVER_LOW, AVAIL + base)
            self.w(m.R_QUEUE_DEVICE_LOW, USED + base)
            self.w(m.R_QUEUE_READY, 1)
        self.w(m.R_STATUS, m.S_ACKNOWLEDGE | m.S_DRIVER | m.S_FEATURES_OK | m.S_DRIVER_OK)
        return self.r(m.R_STATUS)

    def desc(self, index: int, addr: int, length: int, flags: int = 0, nxt: int = 0, q: int = 0) -> None:
        self.mem.write(DESC + q * 0x1000 + 16 * index, struct.pack("<QIHH", addr, length, flags, nxt))

    def publish(self, head: int, q: int = 0) -> None:
        """Put a chain in the available ring (no notify yet)."""
        base = q * 0x1000
        self.mem.write(AVAIL + base + 4 + 2 * (self.avail_idx % self.qsize), head.to_bytes(2, "little"))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write(AVAIL + base + 2, self.avail_idx.to_bytes(2, "little"))

    def submit(self, head: int, q: int = 0) -> None:
        self.publish(head, q)
        self.t.notify(q)

    def used(self, q: int = 0) -> list[tuple[int, int]]:
        """Used elements the device returned since the last call."""
        base = USED + q * 0x1000
        idx = int.from_bytes(self.mem.read(base + 2, 2), "little")
        out = []
        while self.used_seen != idx:
            out.append(struct.unpack("<II", self.mem.read(base + 4 + 8 * (self.used_seen % self.qsize), 8)))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out
