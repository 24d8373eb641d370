"""The I/O bus: which Python device answers which port range or MMIO range.

A device is any object with `read(offset, size) -> int` and `write(offset, size, value)`.
The bus serves one access; the Machine decides what an access nobody owns means.
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

    def __init__(self, name: str):
        self.name = name
        self._ranges: list[_Range] = []
        self._bases: list[int] = []        # the ranges' bases, kept beside them for bisect

    def add(self, base: int, size: int, device: Device) -> None:
        for r in self._ranges:
            if base < r.base + r.size and r.base < base + size:
                raise ValueError(f"{self.name} range {base:#x}+{size} overlaps {r.base:#x}+{r.size}")
        bisect.insort(self._ranges, _Range(base, size, device))
        self._bases = [r.base for r in self._ranges]

    def find(self, addr: int, length: int = 1):
        """(device, offset) owning [addr, addr+length), or None."""
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._ranges[i]
            if addr + length <= r.base + r.size:
                return r.device, addr - r.base
        return None

    def ranges(self):
        return [(r.base, r.size, r.device) for r in self._ranges]
