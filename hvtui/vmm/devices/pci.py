"""PCI configuration mechanism #1 with no PCI devices behind it (ports 0xCF8-0xCFF), and
the PIIX3 reset control register that shares the range (port 0xCF9).

A 32-bit write to 0xCF8 latches the address register and a 32-bit read returns it, so a
kernel probing mechanism #1 (Linux's pci_check_type1) finds it; every read of the data
window 0xCFC-0xCFF, at any width, returns all ones (no device: vendor ID 0xFFFF) and
writes there are ignored. 8- and 16-bit accesses to 0xCF8-0xCFB other than the 0xCF9
byte neither latch nor return anything (reads all ones), as on the PIIX, so mechanism #2's
probe (which wants 0 back from byte reads of 0xCF8 and 0xCFA) fails.

Port 0xCF9 as a byte is the reset control register: reads return the last value written,
bits 1-3 kept (system reset, reset CPU, full reset); a write with bit 2 (reset CPU) set
calls on_reset(), as QEMU's PIIX3 does.
"""
from __future__ import annotations

from typing import Callable

from hvtui.errors import SnapshotError
from hvtui.vmm.devices.state import check_keys

BASE, SIZE = 0xCF8, 8
ADDRESS, RCR, DATA = 0, 1, 4          # offsets: address register, reset control, data window
RCR_SYS_RST, RCR_RST_CPU, RCR_FULL_RST = 0x02, 0x04, 0x08
RCR_MASK = RCR_SYS_RST | RCR_RST_CPU | RCR_FULL_RST
_STATE_KEYS = {"address", "rcr"}


class PciConfigAbsent:
    SIZE = SIZE

    def __init__(self, on_reset: Callable[[], None]):
        """on_reset() is called (on the writing vCPU's thread) when the guest resets the
        machine through 0xCF9."""
        self.on_reset = on_reset
        self.address = 0
        self.rcr = 0

    def read(self, offset: int, size: int) -> int:
        if offset == ADDRESS and size == 4:
            return self.address
        if offset == RCR and size == 1:
            return self.rcr
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == ADDRESS and size == 4:
            self.address = value & 0xFFFFFFFF
        elif offset == RCR and size == 1:
            self.rcr = value & RCR_MASK
            if value & RCR_RST_CPU:
                self.on_reset()

    def save(self) -> dict:
        return {"address": self.address, "rcr": self.rcr}

    def restore(self, state: dict) -> None:
        check_keys(state, _STATE_KEYS, "PCI config")
        address, rcr = state["address"], state["rcr"]
        if type(address) is not int or not 0 <= address <= 0xFFFFFFFF:
            raise SnapshotError(f"PCI config state: address must be a 32-bit int, not {address!r}")
        if type(rcr) is not int or rcr & ~RCR_MASK or rcr < 0:
            raise SnapshotError(f"PCI config state: rcr must be an int with only bits 1-3, not {rcr!r}")
        self.address, self.rcr = address, rcr
