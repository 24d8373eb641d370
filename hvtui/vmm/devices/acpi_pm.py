"""The ACPI fixed-hardware power-management block (ports 0x600-0x60B) the FADT points at:
PM1a event block (status and enable), PM1a control (how a guest powers off) and the ACPI
PM timer. The machine is always in ACPI mode (no SMM): SCI_EN always reads 1.

  offset 0  PM1_STS  u16  write 1 to clear; nothing here sets a bit (no fixed events: no
                          power or sleep button, no timer-overflow or RTC interrupts; no
                          SCI is raised)
  offset 2  PM1_EN   u16  the defined enable bits (TMR, GBL, PWRBTN, SLPBTN, RTC), stored
  offset 4  PM1_CNT  u16  SCI_EN (bit 0, reads 1), BM_RLD (bit 1), SLP_TYP (bits 10-12);
                          GBL_RLS (bit 2) and SLP_EN (bit 13) are write-only, read 0
  offset 6            2 reserved bytes: read 0, writes ignored
  offset 8  PM_TMR   u32  read-only 24-bit counter at 3.579545 MHz (bits 24-31 read 0)

Writing PM1_CNT with SLP_EN set and SLP_TYP == SLP_TYP_S5 calls on_poweroff(). Any other
SLP_TYP with SLP_EN asks for a sleep state hvtui does not offer (the DSDT names only \\_S5)
and is ignored. Accesses of any width at any offset act on the bytes they cover.
"""
from __future__ import annotations

import time
from typing import Callable

from hvtui.errors import SnapshotError
from hvtui.vmm.devices.state import check_keys

BASE, SIZE = 0x600, 12
PM1_EVT_BLK, PM1_EVT_LEN = 0, 4       # offsets and lengths for the FADT
PM1_CNT_BLK, PM1_CNT_LEN = 4, 2
PM_TMR_BLK, PM_TMR_LEN = 8, 4
PM1_STS, PM1_EN, PM1_CNT, PM_TMR = 0, 2, 4, 8

STS_TMR, STS_BM, STS_GBL = 1 << 0, 1 << 4, 1 << 5
STS_PWRBTN, STS_SLPBTN, STS_RTC, STS_WAK = 1 << 8, 1 << 9, 1 << 10, 1 << 15
PM1_STS_MASK = STS_TMR | STS_BM | STS_GBL | STS_PWRBTN | STS_SLPBTN | STS_RTC | STS_WAK
PM1_EN_MASK = STS_TMR | STS_GBL | STS_PWRBTN | STS_SLPBTN | STS_RTC   # enables share the bit layout
SCI_EN, BM_RLD, GBL_RLS, SLP_EN = 1 << 0, 1 << 1, 1 << 2, 1 << 13
SLP_TYP_SHIFT, SLP_TYP_MASK = 10, 0x7 << 10
PM1_CNT_STORED = SCI_EN | BM_RLD | SLP_TYP_MASK       # the bits that read back
SLP_TYP_S5 = 5                        # the value the DSDT's \_S5 package holds

PM_TIMER_HZ = 3_579_545
PM_TIMER_MASK = 0xFFFFFF
_STATE_KEYS = {"status", "enable", "control", "timer"}


class AcpiPm:
    SIZE = SIZE

    def __init__(self, on_poweroff: Callable[[], None], clock: Callable[[], int] = time.monotonic_ns):
        """on_poweroff() is called (on the writing vCPU's thread) when the guest enters S5.
        clock() is a monotonic clock in nanoseconds, for the PM timer."""
        self.on_poweroff = on_poweroff
        self.clock = clock
        self.status = 0
        self.enable = 0
        self.control = SCI_EN
        self._base_ns = int(clock())
        self._base_ticks = 0

    # ---- the PM timer ----
    def timer(self) -> int:
        elapsed = max(0, int(self.clock()) - self._base_ns)
        return (self._base_ticks + elapsed * PM_TIMER_HZ // 1_000_000_000) & PM_TIMER_MASK

    # ---- port I/O ----
    def read(self, offset: int, size: int) -> int:
        regs = (self.status.to_bytes(2, "little") + self.enable.to_bytes(2, "little")
                + self.control.to_bytes(2, "little") + bytes(2))
        if offset + size > PM_TMR:                  # the clock only when the timer is read
            regs += self.timer().to_bytes(4, "little")
        raw = regs[offset:offset + size] if offset >= 0 else b""
        return int.from_bytes(raw.ljust(size, b"\xff"), "little")   # (past the end: open bus)

    def write(self, offset: int, size: int, value: int) -> None:
        # one 16-bit (value, mask) per register the access covers
        for reg in (PM1_STS, PM1_EN, PM1_CNT):
            mask = 0
            part = 0
            for i in range(size):
                pos = offset + i - reg
                if 0 <= pos < 2:
                    mask |= 0xFF << (8 * pos)
                    part |= ((value >> (8 * i)) & 0xFF) << (8 * pos)
            if not mask:
                continue
            if reg == PM1_STS:
                self.status &= ~(part & mask)
            elif reg == PM1_EN:
                self.enable = ((self.enable & ~mask) | part) & PM1_EN_MASK
            else:
                self._write_control((self.control & ~mask) | part)

    def _write_control(self, value: int) -> None:
        self.control = (value & PM1_CNT_STORED) | SCI_EN
        if value & SLP_EN and (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT == SLP_TYP_S5:
            self.on_poweroff()

    # ---- snapshots ----
    def save(self) -> dict:
        return {"status": self.status, "enable": self.enable, "control": self.control, "timer": self.timer()}

    def restore(self, state: dict) -> None:
        check_keys(state, _STATE_KEYS, "ACPI PM")
        for key, mask, must in (("status", PM1_STS_MASK, 0), ("enable", PM1_EN_MASK, 0),
                                ("control", PM1_CNT_STORED, SCI_EN), ("timer", PM_TIMER_MASK, 0)):
            v = state[key]
            if type(v) is not int or v < 0 or v & ~mask or v & must != must:
                raise SnapshotError(f"ACPI PM state: {key} must be an int within {mask:#x}"
                                    + (f" with {must:#x} set" if must else "") + f", not {v!r}")
        self.status, self.enable, self.control = state["status"], state["enable"], state["control"]
        self._base_ns, self._base_ticks = int(self.clock()), state["timer"]
