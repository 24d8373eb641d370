"""Guest memory: RAM slots over host mappings, with bounds-checked access.

Every guest-physical address and length that comes from a guest (or a file) goes
through here before the host touches it: an access outside RAM, or one that straddles
two slots, raises GuestMemoryError and touches nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from hvtui._core import ffi
from hvtui.errors import GuestMemoryError


@dataclass
class Region:
    gpa: int
    size: int
    host: object        # cffi void *
    view: memoryview    # writable view of the host mapping

    def contains(self, gpa: int, length: int) -> bool:
        return self.gpa <= gpa and gpa + length <= self.gpa + self.size


class GuestMemory:
    def __init__(self):
        self.regions: list[Region] = []

    def add(self, gpa: int, size: int, host) -> None:
        view = memoryview(ffi.buffer(host, size)).cast("B")
        self.regions.append(Region(gpa, size, host, view))
        self.regions.sort(key=lambda r: r.gpa)

    @property
    def size(self) -> int:
        return sum(r.size for r in self.regions)

    def _locate(self, gpa: int, length: int) -> tuple[Region, int]:
        if gpa < 0 or length < 0:
            raise GuestMemoryError(f"negative guest address or length ({gpa:#x}, {length})")
        for r in self.regions:
            if r.contains(gpa, length):
                return r, gpa - r.gpa
        raise GuestMemoryError(
            f"guest range {gpa:#x}..{gpa + length:#x} ({length} bytes) is outside guest RAM")

    def check(self, gpa: int, length: int) -> None:
        """Raise unless [gpa, gpa+length) lies wholly in one RAM region."""
        self._locate(gpa, length)

    def read(self, gpa: int, length: int) -> bytes:
        r, off = self._locate(gpa, length)
        return bytes(r.view[off:off + length])

    def write(self, gpa: int, data: bytes) -> None:
        r, off = self._locate(gpa, len(data))
        r.view[off:off + len(data)] = data

    def view(self, gpa: int, length: int) -> memoryview:
        """A zero-copy, bounds-checked window on guest RAM (for devices moving data)."""
        r, off = self._locate(gpa, length)
        return r.view[off:off + length]

    def read_u64(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 8), "little")

    def write_u64(self, gpa: int, value: int) -> None:
        self.write(gpa, value.to_bytes(8, "little"))
