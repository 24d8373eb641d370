"""An ATA (IDE) disk on the legacy primary channel, driven by PIO the way real ones are:
the guest moves every 2 (or 4) bytes of data through the data port, one port-I/O exit
each. The emulated counterpart of virtio-blk, on the same DiskFile.

Registers (ports 0x1F0-0x1F7, control 0x3F6): data, error/features, sector count, LBA
low/mid/high, device (LBA mode, LBA 24-27), status/command; alternate status / device
control (nIEN, SRST). Commands: IDENTIFY DEVICE, READ SECTORS, WRITE SECTORS, FLUSH
CACHE (LBA28); others abort. Master only: a guest that selects the slave sees no device.
"""
from __future__ import annotations

import os
import struct

from hvtui.errors import SnapshotError
from hvtui.vmm.devices import saved

SECTOR = 512
BASE, CONTROL_PORT, IRQ = 0x1F0, 0x3F6, 14
ST_ERR, ST_DRQ, ST_DF, ST_DRDY, ST_BSY = 0x01, 0x08, 0x20, 0x40, 0x80
ERR_ABRT, ERR_IDNF = 0x04, 0x10
CMD_IDENTIFY, CMD_READ, CMD_WRITE, CMD_FLUSH = 0xEC, 0x20, 0x30, 0xE7
DEV_SLAVE = 0x10
CTL_NIEN, CTL_SRST = 0x02, 0x04


def _ata_string(text: str, words: int) -> bytes:
    """ATA strings swap the bytes of every word."""
    raw = text.encode().ljust(2 * words, b" ")[:2 * words]
    return b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))


class AtaDisk:
    def __init__(self, disk, raise_irq=lambda: None):
        self.disk = disk
        self.raise_irq = raise_irq
        self.sector_reads = 0
        self.sector_writes = 0
        self.reset()

    def reset(self) -> None:
        self.error = 0x01          # diagnostic passed
        self.features = 0
        self.count = 1
        self.lba = [1, 0, 0]
        self.device = 0xA0
        self.status = ST_DRDY
        self.control = 0
        self.buffer = bytearray(SECTOR)
        self.pos = 0
        self.mode = ""             # "", "read", "write", "identify"
        self.remaining = 0
        self.current = 0           # LBA of the sector in the buffer

    # ---- port I/O ----
    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self._read_data(size)
        if self.device & DEV_SLAVE:
            return 0               # no slave: floating low
        if offset == 1:
            return self.error
        if offset == 2:
            return self.count & 0xFF
        if offset in (3, 4, 5):
            return self.lba[offset - 3]
        if offset == 6:
            return self.device
        if offset == 7:
            return self.status     # (reading status would also clear a pending interrupt)
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            self._write_data(size, value)
        elif offset == 1:
            self.features = value & 0xFF
        elif offset == 2:
            self.count = value & 0xFF
        elif offset in (3, 4, 5):
            self.lba[offset - 3] = value & 0xFF
        elif offset == 6:
            self.device = value & 0xFF
        elif offset == 7 and not self.device & DEV_SLAVE:
            self._command(value & 0xFF)

    def control_read(self) -> int:
        return 0 if self.device & DEV_SLAVE else self.status

    def control_write(self, value: int) -> None:
        if value & CTL_SRST and not self.control & CTL_SRST:
            self.reset()
        self.control = value & 0xFF

    # ---- commands ----
    def _lba28(self) -> int:
        return ((self.device & 0x0F) << 24) | (self.lba[2] << 16) | (self.lba[1] << 8) | self.lba[0]

    def _abort(self, error: int = ERR_ABRT) -> None:
        self.mode = ""
        self.error = error
        self.status = ST_DRDY | ST_ERR
        self._interrupt()

    def _interrupt(self) -> None:
        if not self.control & CTL_NIEN:
            self.raise_irq()

    def _command(self, cmd: int) -> None:
        self.error = 0
        if cmd == CMD_IDENTIFY:
            self._start("identify", 1, self._identify())
        elif cmd in (CMD_READ, CMD_WRITE):
            n = self.count or 256
            lba = self._lba28()
            if lba + n > self.disk.sectors:
                self._abort(ERR_IDNF)
            elif cmd == CMD_WRITE and self.disk.readonly:
                self._abort()
            elif cmd == CMD_READ:
                self.current = lba
                self._start("read", n, self._load(lba))
            else:
                self.current = lba
                self._start("write", n, bytes(SECTOR))
        elif cmd == CMD_FLUSH:
            if not self.disk.readonly:
                os.fdatasync(self.disk.fd)
            self.status = ST_DRDY
            self._interrupt()
        else:
            self._abort()

    def _start(self, mode: str, sectors: int, data: bytes) -> None:
        self.mode, self.remaining, self.pos = mode, sectors, 0
        self.buffer[:] = data
        self.status = ST_DRDY | ST_DRQ
        if mode != "write":
            self._interrupt()

    def _load(self, lba: int) -> bytes:
        self.sector_reads += 1
        data = os.pread(self.disk.fd, SECTOR, lba * SECTOR)
        return data.ljust(SECTOR, b"\0")

    def _identify(self) -> bytes:
        w = [0] * 256
        w[0] = 0x0040                                  # fixed device
        w[47] = 0x8001                                 # one sector per DRQ block
        w[49] = 1 << 9                                 # LBA supported
        w[53] = 1
        n = min(self.disk.sectors, 0x0FFFFFFF)
        w[60], w[61] = n & 0xFFFF, n >> 16
        w[80] = 0x7E                                   # ATA-1..6
        w[83] = 1 << 12                                # FLUSH CACHE
        raw = bytearray(struct.pack("<256H", *w))
        raw[20:40] = _ata_string("HVTUI0001", 10)      # serial
        raw[46:54] = _ata_string("0.1", 4)             # firmware
        raw[54:94] = _ata_string("HVTUI EMULATED DISK", 20)
        return bytes(raw)

    # ---- the data port ----
    def _read_data(self, size: int) -> int:
        if self.mode not in ("read", "identify") or size not in (2, 4):
            return 0xFFFF if size == 2 else 0xFFFFFFFF
        value = int.from_bytes(self.buffer[self.pos:self.pos + size], "little")
        self.pos += size
        if self.pos >= SECTOR:
            self.remaining -= 1
            if self.mode == "read" and self.remaining:
                self.current += 1
                self.buffer[:] = self._load(self.current)
                self.pos = 0
                self._interrupt()
            else:
                self.mode = ""
                self.status = ST_DRDY
        return value

    def _write_data(self, size: int, value: int) -> None:
        if self.mode != "write" or size not in (2, 4):
            return
        self.buffer[self.pos:self.pos + size] = value.to_bytes(size, "little")
        self.pos += size
        if self.pos >= SECTOR:
            os.pwrite(self.disk.fd, self.buffer, self.current * SECTOR)
            self.sector_writes += 1
            self.remaining -= 1
            self.current += 1
            self.pos = 0
            if not self.remaining:
                self.mode = ""
                self.status = ST_DRDY
            self._interrupt()

    # ---- snapshots ----
    def save(self) -> dict:
        return {"error": self.error, "features": self.features, "count": self.count, "lba": self.lba,
                "device": self.device, "status": self.status, "control": self.control,
                "buffer": self.buffer.hex(), "pos": self.pos, "mode": self.mode,
                "remaining": self.remaining, "current": self.current}

    STATE_KEYS = ("error", "features", "count", "lba", "device", "status", "control", "buffer", "pos",
                  "mode", "remaining", "current")
    MODES = ("", "read", "write", "identify")

    def restore(self, state: dict) -> None:
        """Checked as the live path checks a command: a transfer in progress must lie inside
        the disk (the sector in the buffer and the ones still to come), the buffer is one
        sector and the position a whole word inside it."""
        what = "ATA disk"
        saved.fields(state, self.STATE_KEYS, what)
        regs = {k: saved.integer(state, k, 0, 0xFF, what)
                for k in ("error", "features", "count", "device", "status", "control")}
        lba = state["lba"]
        if not isinstance(lba, list) or len(lba) != 3 or any(type(x) is not int or not 0 <= x <= 0xFF for x in lba):
            raise SnapshotError(f"{what} state: lba must be three bytes, not {str(lba)[:40]}")
        buffer = saved.hex_bytes(state, "buffer", SECTOR, what, exact=True)
        pos = saved.integer(state, "pos", 0, SECTOR, what)
        if pos % 2:
            raise SnapshotError(f"{what} state: pos {pos} is not on a word boundary")
        mode = state["mode"]
        if mode not in self.MODES:
            raise SnapshotError(f"{what} state: mode {str(mode)[:20]!r} is not one of {self.MODES}")
        remaining = saved.integer(state, "remaining", 0, 256, what)
        current = saved.integer(state, "current", 0, self.disk.sectors, what)
        if mode in ("read", "write") and not (remaining >= 1 and current + remaining <= self.disk.sectors):
            raise SnapshotError(f"{what} state: a {mode} of {remaining} sector(s) from sector {current} runs past "
                                f"the end of the {self.disk.sectors}-sector disk")
        if mode == "identify" and remaining != 1:
            raise SnapshotError(f"{what} state: IDENTIFY with {remaining} sectors to go")
        for k, v in regs.items():
            setattr(self, k, v)
        self.lba, self.buffer, self.pos, self.mode = list(lba), bytearray(buffer), pos, mode
        self.remaining, self.current = remaining, current


class AtaControl:
    """Port 0x3F6: the channel's alternate status / device control register."""

    def __init__(self, ata: AtaDisk):
        self.ata = ata

    def read(self, offset: int, size: int) -> int:
        return self.ata.control_read()

    def write(self, offset: int, size: int, value: int) -> None:
        self.ata.control_write(value)

    def save(self) -> dict:
        return {}       # the register lives in AtaDisk (control), saved with it

    def restore(self, state: dict) -> None:
        saved.fields(state, (), "ATA control")
