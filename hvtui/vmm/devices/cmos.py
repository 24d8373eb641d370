"""The CMOS real-time clock and its 128 bytes of NVRAM (a Motorola MC146818 as on every PC,
ports 0x70-0x71): the time of day a kernel reads at boot, and the memory-size and CPU-count
bytes firmware and kernels look up there (filled in as QEMU fills them).

Port 0x70 (offset 0) takes the register index (bits 0-6) and the NMI mask (bit 7, kept as
`nmi_masked`; nothing else here uses it); reading it returns the last byte written there.
Port 0x71 (offset 1) reads and writes the register at the index. A wider access touches
consecutive ports, as port I/O does: a 16-bit write at 0x70 sets the index, then writes
the register.

The clock is the host's time of day (UTC, from `clock`) plus an offset the guest sets by
writing the time registers; registers are BCD unless register B's DM bit is set, 24-hour
unless B's 24/12 bit is clear (then bit 7 of the hour means PM). With B's SET bit on the
time registers hold still and take writes; clearing SET starts the new time at the start
of its second. A time register written while the clock runs moves the clock by the
difference and keeps its phase. The day of the week is derived from the date (writing it
changes nothing). Register A's UIP bit is set during the last 244 us before each second
boundary of the guest's clock (never while SET is on); its divider bits are stored but do
not stop the clock.

No interrupt is raised on IRQ 8: no periodic, alarm or update-ended interrupts (register C
always reads 0). The alarm registers and B's interrupt-enable bits are stored only.
"""
from __future__ import annotations

import datetime
import math
import time
from typing import Callable

from hvtui.errors import SnapshotError
from hvtui.vmm.devices.state import check_keys

BASE, SIZE, IRQ = 0x70, 2, 8
NVRAM_SIZE = 128

# registers
SECONDS, SECONDS_ALARM, MINUTES, MINUTES_ALARM, HOURS, HOURS_ALARM = range(6)
DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR = 0x06, 0x07, 0x08, 0x09
REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
SHUTDOWN_STATUS, FLOPPY_TYPES, EQUIPMENT = 0x0F, 0x10, 0x14
BASE_MEM_LO, BASE_MEM_HI = 0x15, 0x16
EXT_MEM_LO, EXT_MEM_HI = 0x17, 0x18
EXT_MEM2_LO, EXT_MEM2_HI = 0x30, 0x31
CENTURY = 0x32
MEM_16M_LO, MEM_16M_HI = 0x34, 0x35
HIGH_MEM_0, HIGH_MEM_1, HIGH_MEM_2 = 0x5B, 0x5C, 0x5D
CPU_COUNT = 0x5F
TIME_REGS = (SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY)

A_UIP = 0x80
A_RESET = 0x26                     # 32.768 kHz time base, 1024 Hz rate select
B_SET, B_PIE, B_AIE, B_UIE, B_SQWE, B_DM, B_24H, B_DSE = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
B_RESET = B_24H                    # 24-hour, BCD
D_VRT = 0x80                       # valid RAM and time
EQUIPMENT_BYTE = 0x06              # bit 1 math coprocessor, bit 2 PS/2 pointing device (as
                                   # QEMU sets it), no floppy (bit 0), EGA/VGA display (bits 4-5)
UIP_WINDOW = 244e-6                # seconds before each boundary that UIP is set
MAX_OFFSET = 1e12                  # seconds (~31,700 years): more than any settable date needs

KiB, MiB = 1 << 10, 1 << 20
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_MAX_ORDINAL = datetime.date.max.toordinal()
_CYCLE_DAYS = 146097               # days in 400 Gregorian years: the calendar repeats
_STATE_KEYS = {"index", "nmi_masked", "ram", "clock_offset"}


def _calendar(t: float) -> tuple[int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, day of week with Sunday=1) at epoch t, UTC.
    Dates outside years 1-9999 are folded by whole 400-year cycles (never raises)."""
    days, sod = divmod(math.floor(t), 86400)
    ordinal = _EPOCH_ORDINAL + days
    if not 1 <= ordinal <= _MAX_ORDINAL:
        ordinal = (ordinal - 1) % (24 * _CYCLE_DAYS) + 1
    d = datetime.date.fromordinal(ordinal)
    hour, rest = divmod(sod, 3600)
    return d.year, d.month, d.day, hour, rest // 60, rest % 60, d.isoweekday() % 7 + 1


def _epoch(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Seconds since 1970 for a date (clamped into range: a guest may write anything; a
    day past the month's end runs into the next month, as timegm does)."""
    year, month = min(max(year, 1), 9999), min(max(month, 1), 12)
    day, hour = min(max(day, 1), 31), min(hour, 23)
    days = datetime.date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    return days * 86400 + hour * 3600 + min(minute, 59) * 60 + min(second, 59)


class CmosRtc:
    SIZE = SIZE

    def __init__(self, ram_size: int, low_ram_end: int, high_ram_size: int, vcpus: int,
                 clock: Callable[[], float] = time.time):
        """ram_size: the guest's RAM in bytes; low_ram_end: where RAM below 4 GiB ends
        (QEMU's below_4g_mem_size); high_ram_size: RAM from 4 GiB up; vcpus: 1-256.
        clock() gives the host's time of day in seconds since 1970 (UTC)."""
        for name, v in (("ram_size", ram_size), ("low_ram_end", low_ram_end), ("high_ram_size", high_ram_size)):
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"CmosRtc: {name} must be a non-negative int, not {v!r}")
        if not isinstance(vcpus, int) or not 1 <= vcpus <= 256:
            raise ValueError(f"CmosRtc: vcpus must be 1-256, not {vcpus!r}")
        self.ram_size = ram_size
        self.clock = clock
        self.index = 0
        self.nmi_masked = False
        self.offset = 0.0            # seconds added to clock() for the guest's time
        ram = bytearray(NVRAM_SIZE)
        ram[REG_A], ram[REG_B], ram[REG_C], ram[REG_D] = A_RESET, B_RESET, 0, D_VRT
        ram[EQUIPMENT] = EQUIPMENT_BYTE
        ram[FLOPPY_TYPES] = 0
        base = min(low_ram_end // KiB, 640)
        ram[BASE_MEM_LO], ram[BASE_MEM_HI] = base & 0xFF, base >> 8
        ext = min((low_ram_end - MiB) // KiB, 0xFFFF) if low_ram_end > MiB else 0
        ram[EXT_MEM_LO], ram[EXT_MEM_HI] = ext & 0xFF, ext >> 8
        ram[EXT_MEM2_LO], ram[EXT_MEM2_HI] = ext & 0xFF, ext >> 8
        mid = min((low_ram_end - 16 * MiB) // (64 * KiB), 0xFFFF) if low_ram_end > 16 * MiB else 0
        ram[MEM_16M_LO], ram[MEM_16M_HI] = mid & 0xFF, mid >> 8
        high = min(high_ram_size // (64 * KiB), 0xFFFFFF)
        ram[HIGH_MEM_0], ram[HIGH_MEM_1], ram[HIGH_MEM_2] = high & 0xFF, (high >> 8) & 0xFF, high >> 16
        ram[CPU_COUNT] = vcpus - 1
        self.ram = ram
        self.ram[:] = self.save()["ram"]       # the time registers start out holding the time

    # ---- port I/O ----
    def read(self, offset: int, size: int) -> int:
        value = 0
        for i in range(size):
            value |= self._read_port(offset + i) << (8 * i)
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            self._write_port(offset + i, (value >> (8 * i)) & 0xFF)

    def _read_port(self, port: int) -> int:
        if port == 0:
            return self.index | (0x80 if self.nmi_masked else 0)
        if port == 1:
            return self._read_reg(self.index)
        return 0xFF

    def _write_port(self, port: int, value: int) -> None:
        if port == 0:
            self.index = value & 0x7F
            self.nmi_masked = bool(value & 0x80)
        elif port == 1:
            self._write_reg(self.index, value)

    # ---- registers ----
    def _read_reg(self, i: int) -> int:
        b = self.ram[REG_B]
        if i == REG_A:
            uip = 0
            if not b & B_SET:
                t = self.clock() + self.offset
                uip = A_UIP if t - math.floor(t) >= 1 - UIP_WINDOW else 0
            return (self.ram[REG_A] & 0x7F) | uip
        if i == REG_C:
            return 0                  # no interrupt flags, ever (reading clears: nothing to clear)
        if i == REG_D:
            return D_VRT
        if i in TIME_REGS and not b & B_SET:
            return self._time_bytes(b)[i]
        return self.ram[i]

    def _write_reg(self, i: int, v: int) -> None:
        b = self.ram[REG_B]
        if i == REG_A:
            self.ram[REG_A] = v & 0x7F               # UIP is read-only
        elif i == REG_B:
            if v & B_SET:
                v &= ~B_UIE                          # as the MC146818: SET clears UIE
                if not b & B_SET:                    # the clock stops: latch it, in the old format
                    for reg, byte in self._time_bytes(b).items():
                        self.ram[reg] = byte
            self.ram[REG_B] = v
            if b & B_SET and not v & B_SET:          # the clock starts from what was written
                self.offset = self._clamp(self._written_epoch(v) - self.clock())
        elif i in (REG_C, REG_D):
            pass                                     # read-only
        elif i in TIME_REGS and not b & B_SET:
            # the running clock: its registers are counters; moving one moves the clock
            now = self._time_bytes(b)
            before = self._fields_epoch(now, b)
            now[i] = v
            self.offset = self._clamp(self.offset + self._fields_epoch(now, b) - before)
        else:
            self.ram[i] = v

    # ---- the clock ----
    def _enc(self, v: int, b: int) -> int:
        return v if b & B_DM else ((v // 10) << 4) | (v % 10)

    def _dec(self, v: int, b: int) -> int:
        return v if b & B_DM else (v >> 4) * 10 + (v & 0x0F)

    def _time_bytes(self, b: int) -> dict[int, int]:
        """The time registers for the guest's clock now, in register B's format b."""
        year, month, day, hour, minute, second, dow = _calendar(self.clock() + self.offset)
        if b & B_24H:
            h = self._enc(hour, b)
        else:
            h = self._enc(hour % 12 or 12, b) | (0x80 if hour >= 12 else 0)
        return {SECONDS: self._enc(second, b), MINUTES: self._enc(minute, b), HOURS: h,
                DAY_OF_WEEK: self._enc(dow, b), DAY_OF_MONTH: self._enc(day, b),
                MONTH: self._enc(month, b), YEAR: self._enc(year % 100, b),
                CENTURY: self._enc(year // 100, b)}

    def _fields_epoch(self, regs, b: int) -> int:
        """Seconds since 1970 for time registers (anything indexable by register number)."""
        hour_byte = regs[HOURS]
        if b & B_24H:
            hour = self._dec(hour_byte, b)
        else:
            hour = self._dec(hour_byte & 0x7F, b) % 12 + (12 if hour_byte & 0x80 else 0)
        year = min(self._dec(regs[CENTURY], b), 99) * 100 + min(self._dec(regs[YEAR], b), 99)
        return _epoch(year, self._dec(regs[MONTH], b), self._dec(regs[DAY_OF_MONTH], b), hour,
                      self._dec(regs[MINUTES], b), self._dec(regs[SECONDS], b))

    def _written_epoch(self, b: int) -> int:
        return self._fields_epoch(self.ram, b)

    @staticmethod
    def _clamp(offset: float) -> float:
        return float(min(max(offset, -MAX_OFFSET), MAX_OFFSET))

    # ---- snapshots ----
    def save(self) -> dict:
        """index, NMI mask, the 128 bytes (time registers holding the time now unless SET
        holds them) and the clock offset in seconds."""
        ram = bytearray(self.ram)
        b = ram[REG_B]
        if not b & B_SET:
            for reg, byte in self._time_bytes(b).items():
                ram[reg] = byte
        return {"index": self.index, "nmi_masked": self.nmi_masked, "ram": bytes(ram),
                "clock_offset": self.offset}

    def restore(self, state: dict) -> None:
        check_keys(state, _STATE_KEYS, "CMOS RTC")
        index, nmi, ram, offset = state["index"], state["nmi_masked"], state["ram"], state["clock_offset"]
        if type(index) is not int or not 0 <= index < NVRAM_SIZE:
            raise SnapshotError(f"CMOS RTC state: index must be an int 0-127, not {index!r}")
        if type(nmi) is not bool:
            raise SnapshotError(f"CMOS RTC state: nmi_masked must be a bool, not {nmi!r}")
        if not isinstance(ram, (bytes, bytearray)) or len(ram) != NVRAM_SIZE:
            raise SnapshotError(f"CMOS RTC state: ram must be {NVRAM_SIZE} bytes, not {type(ram).__name__}"
                                + (f" of {len(ram)}" if isinstance(ram, (bytes, bytearray)) else ""))
        if ram[REG_A] & A_UIP or ram[REG_C] != 0 or ram[REG_D] != D_VRT:
            raise SnapshotError("CMOS RTC state: registers A-D hold values no guest can write "
                                f"(A={ram[REG_A]:#04x} C={ram[REG_C]:#04x} D={ram[REG_D]:#04x})")
        if ram[REG_B] & B_SET and ram[REG_B] & B_UIE:
            raise SnapshotError(f"CMOS RTC state: register B {ram[REG_B]:#04x} has SET and UIE both on")
        if type(offset) not in (int, float) or not math.isfinite(offset) or abs(offset) > MAX_OFFSET:
            raise SnapshotError(f"CMOS RTC state: clock_offset must be a finite number of seconds "
                                f"within +-{MAX_OFFSET:.0e}, not {offset!r}")
        self.index, self.nmi_masked, self.ram, self.offset = index, nmi, bytearray(ram), float(offset)
