"""QEMU's firmware configuration device, legacy I/O interface only (ports 0x510-0x511,
no DMA): what a guest that looks for QEMU's fw_cfg finds, with the machine's RAM size and
CPU counts and an empty file directory.

Offset 0 is the 16-bit selector: a 16-bit write selects an item and rewinds it (8-bit
writes there are ignored, as QEMU ignores them); a 16-bit read returns the selector, an
8-bit read its low byte. Offset 1 is the 8-bit data port: each read returns the next byte
of the selected item, 0 past its end or for a key with no item; writes are ignored.

Items: 0x0000 signature "QEMU", 0x0001 ID (u32 LE, 1: traditional interface, no DMA),
0x0003 RAM size (u64 LE), 0x0005 CPUs at boot and 0x000F maximum CPUs (u16 LE), 0x0019
the file directory (a big-endian u32 count of 0: no files).
"""
from __future__ import annotations

import struct

from hvtui.errors import SnapshotError
from hvtui.vmm.devices.state import check_keys

BASE, SIZE = 0x510, 2
SELECTOR, DATA = 0, 1                 # offsets
FW_CFG_SIGNATURE, FW_CFG_ID, FW_CFG_RAM_SIZE = 0x0000, 0x0001, 0x0003
FW_CFG_NB_CPUS, FW_CFG_MAX_CPUS, FW_CFG_FILE_DIR = 0x0005, 0x000F, 0x0019
FW_CFG_VERSION_TRADITIONAL = 1
_STATE_KEYS = {"selector", "offset"}


class FwCfg:
    SIZE = SIZE

    def __init__(self, ram_size: int, vcpus: int):
        if not isinstance(ram_size, int) or not 0 <= ram_size < 1 << 64:
            raise ValueError(f"FwCfg: ram_size must be a u64, not {ram_size!r}")
        if not isinstance(vcpus, int) or not 1 <= vcpus <= 0xFFFF:
            raise ValueError(f"FwCfg: vcpus must be 1-65535, not {vcpus!r}")
        self.items: dict[int, bytes] = {
            FW_CFG_SIGNATURE: b"QEMU",
            FW_CFG_ID: struct.pack("<I", FW_CFG_VERSION_TRADITIONAL),
            FW_CFG_RAM_SIZE: struct.pack("<Q", ram_size),
            FW_CFG_NB_CPUS: struct.pack("<H", vcpus),
            FW_CFG_MAX_CPUS: struct.pack("<H", vcpus),
            FW_CFG_FILE_DIR: struct.pack(">I", 0),
        }
        self.selector = 0
        self.offset = 0               # next byte of the selected item; stops at its end

    def read(self, offset: int, size: int) -> int:
        if offset == SELECTOR:
            return self.selector & ((1 << (8 * size)) - 1)
        if offset == DATA:
            value = 0
            for i in range(size):     # (only bytes on the bus; wider reads read on)
                value |= self._next_byte() << (8 * i)
            return value
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == SELECTOR and size == 2:
            self.selector = value & 0xFFFF
            self.offset = 0

    def _next_byte(self) -> int:
        item = self.items.get(self.selector, b"")
        if self.offset >= len(item):
            return 0
        self.offset += 1
        return item[self.offset - 1]

    def save(self) -> dict:
        return {"selector": self.selector, "offset": self.offset}

    def restore(self, state: dict) -> None:
        check_keys(state, _STATE_KEYS, "fw_cfg")
        selector, offset = state["selector"], state["offset"]
        if type(selector) is not int or not 0 <= selector <= 0xFFFF:
            raise SnapshotError(f"fw_cfg state: selector must be a 16-bit int, not {selector!r}")
        length = len(self.items.get(selector, b""))
        if type(offset) is not int or not 0 <= offset <= length:
            raise SnapshotError(f"fw_cfg state: offset must be an int 0-{length} for item {selector:#06x}, "
                                f"not {offset!r}")
        self.selector, self.offset = selector, offset
