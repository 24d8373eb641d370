"""A split virtqueue (virtio 1.1 §2.6), read and written through bounds-checked GuestMemory.

Everything the guest hands over is checked before it is used: ring addresses and sizes
when the queue goes ready, every avail index, head index, descriptor index, chain length
and buffer range when a request is popped. A malformed ring raises VirtqueueError and
nothing of host memory is touched; the transport then marks the device NEEDS_RESET.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from hvtui.errors import GuestMemoryError

DESC = struct.Struct("<QIHH")        # addr, len, flags, next
DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
USED_ELEM = struct.Struct("<II")     # id, len


class VirtqueueError(Exception):
    """The guest gave the device a ring it cannot follow."""


@dataclass
class Buffer:
    addr: int
    length: int
    writable: bool


@dataclass
class Chain:
    head: int
    buffers: list[Buffer]

    @property
    def readable(self) -> list[Buffer]:
        return [b for b in self.buffers if not b.writable]

    @property
    def writable(self) -> list[Buffer]:
        return [b for b in self.buffers if b.writable]


class SplitQueue:
    def __init__(self, max_size: int = 256):
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        self.size = self.max_size
        self.ready = False
        self.desc = self.avail = self.used = 0
        self.last_avail = 0      # next avail ring slot the device will read (free-running u16)
        self.used_idx = 0        # next used ring slot the device will write (free-running u16)

    # ---- set-up ----
    def set_size(self, size: int) -> None:
        if not 0 < size <= self.max_size or size & (size - 1):
            raise VirtqueueError(f"queue size {size} is not a power of two up to {self.max_size}")
        self.size = size

    def activate(self, memory) -> None:
        """QueueReady = 1: the three areas must lie in guest RAM with their alignment."""
        n = self.size
        areas = (("descriptor table", self.desc, 16 * n, 16), ("available ring", self.avail, 6 + 2 * n, 2),
                 ("used ring", self.used, 6 + 8 * n, 4))
        for what, addr, length, align in areas:
            if addr % align:
                raise VirtqueueError(f"{what} at {addr:#x} is not {align}-byte aligned")
            try:
                memory.check(addr, length)
            except GuestMemoryError as e:
                raise VirtqueueError(f"{what}: {e}") from None
        self.ready = True

    # ---- requests ----
    def _u16(self, memory, addr: int) -> int:
        return int.from_bytes(memory.read(addr, 2), "little")

    def has_request(self, memory) -> bool:
        return self.ready and self._u16(memory, self.avail + 2) != self.last_avail

    def pop(self, memory) -> Chain | None:
        """The next descriptor chain the driver made available, checked; None if none."""
        if not self.ready:
            return None
        avail_idx = self._u16(memory, self.avail + 2)
        pending = (avail_idx - self.last_avail) & 0xFFFF
        if pending == 0:
            return None
        if pending > self.size:
            raise VirtqueueError(f"available index {avail_idx} ran {pending} entries ahead of a {self.size}-entry queue")
        head = self._u16(memory, self.avail + 4 + 2 * (self.last_avail % self.size))
        buffers = self._walk(memory, head)
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return Chain(head, buffers)

    def _walk(self, memory, head: int) -> list[Buffer]:
        buffers: list[Buffer] = []
        index = head
        seen_writable = False
        while True:
            if index >= self.size:
                raise VirtqueueError(f"descriptor index {index} is outside the {self.size}-entry table")
            if len(buffers) == self.size:
                raise VirtqueueError(f"descriptor chain from {head} is longer than the queue (a loop?)")
            addr, length, flags, nxt = DESC.unpack(memory.read(self.desc + 16 * index, 16))
            if flags & DESC_F_INDIRECT:
                raise VirtqueueError("indirect descriptors were not negotiated")
            writable = bool(flags & DESC_F_WRITE)
            if seen_writable and not writable:
                raise VirtqueueError("a device-readable descriptor follows a device-writable one")
            seen_writable |= writable
            try:
                memory.check(addr, length)
            except GuestMemoryError as e:
                raise VirtqueueError(f"descriptor {index}: {e}") from None
            buffers.append(Buffer(addr, length, writable))
            if not flags & DESC_F_NEXT:
                return buffers
            index = nxt

    def push_used(self, memory, head: int, written: int) -> None:
        """Return a chain to the driver: the used element first, then the index (x86: in order)."""
        slot = self.used + 4 + 8 * (self.used_idx % self.size)
        memory.write(slot, USED_ELEM.pack(head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        memory.write(self.used + 2, self.used_idx.to_bytes(2, "little"))

    # ---- snapshots ----
    def save(self) -> dict:
        return {k: getattr(self, k) for k in ("size", "ready", "desc", "avail", "used", "last_avail", "used_idx")}

    STATE_KEYS = ("size", "ready", "desc", "avail", "used", "last_avail", "used_idx")

    def restore(self, state: dict, memory) -> None:
        """Checked as the live path checks the driver's writes: a power-of-two size up to
        max_size, 16-bit indices, and a ready queue's three areas aligned and in guest RAM
        (activate's checks). Raises VirtqueueError; nothing changes unless all pass."""
        if not isinstance(state, dict) or set(state) != set(self.STATE_KEYS):
            raise VirtqueueError(f"queue state must have exactly {', '.join(self.STATE_KEYS)}")
        limits = {"size": self.max_size, "desc": (1 << 64) - 1, "avail": (1 << 64) - 1, "used": (1 << 64) - 1,
                  "last_avail": 0xFFFF, "used_idx": 0xFFFF}
        for k, hi in limits.items():
            if type(state[k]) is not int or not 0 <= state[k] <= hi:
                raise VirtqueueError(f"queue {k} {str(state[k])[:30]} is outside 0..{hi:#x}")
        if type(state["ready"]) is not bool:
            raise VirtqueueError("queue ready must be true or false")
        probe = SplitQueue(self.max_size)
        probe.set_size(state["size"])
        probe.desc, probe.avail, probe.used = state["desc"], state["avail"], state["used"]
        if state["ready"]:
            probe.activate(memory)
        for k in self.STATE_KEYS:
            setattr(self, k, state[k])
