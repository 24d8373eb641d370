"""The I/O bus: which Python device answers which port range or MMIO range.

A device is any object with `read(offset, size) -> int` and `write(offset, size, value)`.
The bus serves one access; the Machine decides what an access nobody owns means.

A port bus (by_address=True) also keeps every address it owns in a dict, so that the
exit path finds a port's device with one lookup: the 64 Ki ports hold at most a few
hundred claimed ones. An MMIO bus, whose ranges span megabytes, bisects its bases.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol


class Device(Protocol):
    def read(self, offset: int, size: int) -> int: ...
    def write(self, offset: int, size: int, value: int) -> None: ...


@dataclass(order=True)
class _Range:
    base: int
    size: int
    device: object = field(compare=False)


class Bus:
    """Non-overlapping address ranges, each owned by one device."""

    def __init__(self, name: str, by_address: bool = False):
        self.name = name
        self._ranges: list[_Range] = []
        self._bases: list[int] = []        # the ranges' bases, kept beside them for bisect
        self._by_address: dict[int, tuple] | None = {} if by_address else None   # addr -> (device, offset, room)
        if self._by_address is not None:
            # owner(addr): (device, offset, room) for addr, room being how many bytes from
            # addr the device still owns, or None: the dict's own get, no Python frame and
            # no allocation on the exit path
            self.owner = self._by_address.get

    def add(self, base: int, size: int, device: Device) -> None:
        for r in self._ranges:
            if base < r.base + r.size and r.base < base + size:
                raise ValueError(f"{self.name} range {base:#x}+{size} overlaps {r.base:#x}+{r.size}")
        bisect.insort(self._ranges, _Range(base, size, device))
        self._bases = [r.base for r in self._ranges]
        if self._by_address is not None:
            for addr in range(base, base + size):
                self._by_address[addr] = (device, addr - base, base + size - addr)

    def find(self, addr: int, length: int = 1):
        """(device, offset) owning [addr, addr+length), or None."""
        if self._by_address is not None:
            hit = self._by_address.get(addr)
            return (hit[0], hit[1]) if hit is not None and length <= hit[2] else None
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._ranges[i]
            if addr + length <= r.base + r.size:
                return r.device, addr - r.base
        return None

    def ranges(self):
        return [(r.base, r.size, r.device) for r in self._ranges]
