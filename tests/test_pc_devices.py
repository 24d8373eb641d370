"""The small PC devices a real kernel probes (CMOS RTC, PCI config mechanism #1 with no
devices and the 0xCF9 reset, QEMU's fw_cfg, the ACPI PM block) as state machines with
injected clocks (no KVM): what a guest reads, what it can set, what ends the machine, and
snapshots that restore exactly and refuse what no guest could have produced."""
import calendar
import math
import struct

import pytest
from hypothesis import given, settings, strategies as st

from hvtui.errors import SnapshotError
from hvtui.vmm.devices import acpi_pm, cmos, fw_cfg, pci
from hvtui.vmm.devices.acpi_pm import AcpiPm
from hvtui.vmm.devices.cmos import CmosRtc
from hvtui.vmm.devices.fw_cfg import FwCfg
from hvtui.vmm.devices.pci import PciConfigAbsent

MiB, GiB = 1 << 20, 1 << 30
T0 = calendar.timegm((2024, 2, 29, 13, 45, 7)) + 0.5     # a Thursday afternoon, mid-second


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


# ---- CMOS RTC ----
def rtc(clock=None, ram=64 * MiB, low=64 * MiB, high=0, vcpus=1):
    return CmosRtc(ram, low, high, vcpus, clock=clock or Clock(T0))


def reg(dev, index, value=None):
    dev.write(0, 1, index)
    if value is None:
        return dev.read(1, 1)
    dev.write(1, 1, value)


def time_regs(dev):
    return {name: reg(dev, i) for name, i in (
        ("sec", cmos.SECONDS), ("min", cmos.MINUTES), ("hour", cmos.HOURS), ("dow", cmos.DAY_OF_WEEK),
        ("day", cmos.DAY_OF_MONTH), ("month", cmos.MONTH), ("year", cmos.YEAR), ("century", cmos.CENTURY))}


def test_rtc_reads_the_clock_in_bcd_by_default():
    dev = rtc()
    assert reg(dev, cmos.REG_A) == 0x26 and reg(dev, cmos.REG_B) == 0x02
    assert time_regs(dev) == {"sec": 0x07, "min": 0x45, "hour": 0x13, "dow": 5, "day": 0x29,
                              "month": 0x02, "year": 0x24, "century": 0x20}


def test_rtc_binary_mode():
    dev = rtc()
    reg(dev, cmos.REG_B, cmos.B_24H | cmos.B_DM)
    assert time_regs(dev) == {"sec": 7, "min": 45, "hour": 13, "dow": 5, "day": 29,
                              "month": 2, "year": 24, "century": 20}


@pytest.mark.parametrize("hour, bcd, binary", [(13, 0x81, 0x81), (0, 0x12, 12), (12, 0x92, 0x8C),
                                               (11, 0x11, 11), (23, 0x91, 0x8B)])
def test_rtc_12_hour_mode(hour, bcd, binary):
    clock = Clock(calendar.timegm((2024, 2, 29, hour, 0, 0)))
    dev = rtc(clock)
    reg(dev, cmos.REG_B, 0)                       # 12-hour, BCD
    assert reg(dev, cmos.HOURS) == bcd
    reg(dev, cmos.REG_B, cmos.B_DM)               # 12-hour, binary
    assert reg(dev, cmos.HOURS) == binary


def test_rtc_time_set_with_SET_sticks_and_advances():
    clock = Clock(T0)
    dev = rtc(clock)
    reg(dev, cmos.REG_B, cmos.B_SET | cmos.B_24H)
    clock.now += 5
    assert reg(dev, cmos.SECONDS) == 0x07         # held while SET is on
    assert reg(dev, cmos.REG_A) & cmos.A_UIP == 0
    for i, v in ((cmos.SECONDS, 0x58), (cmos.MINUTES, 0x59), (cmos.HOURS, 0x23), (cmos.DAY_OF_MONTH, 0x31),
                 (cmos.MONTH, 0x12), (cmos.YEAR, 0x31), (cmos.CENTURY, 0x20)):
        reg(dev, i, v)
    clock.now += 100                              # time passing while SET is on does not count
    assert reg(dev, cmos.SECONDS) == 0x58
    reg(dev, cmos.REG_B, cmos.B_24H)              # the new time starts now
    assert time_regs(dev) == {"sec": 0x58, "min": 0x59, "hour": 0x23, "dow": 4, "day": 0x31,
                              "month": 0x12, "year": 0x31, "century": 0x20}
    clock.now += 2
    assert time_regs(dev) == {"sec": 0x00, "min": 0x00, "hour": 0x00, "dow": 5, "day": 0x01,
                              "month": 0x01, "year": 0x32, "century": 0x20}


def test_rtc_set_in_12_hour_binary_mode():
    clock = Clock(T0)
    dev = rtc(clock)
    b = cmos.B_DM                                 # 12-hour, binary
    reg(dev, cmos.REG_B, cmos.B_SET | b)
    reg(dev, cmos.HOURS, 0x80 | 12)               # 12 PM = noon
    reg(dev, cmos.MINUTES, 30)
    reg(dev, cmos.REG_B, b)
    reg(dev, cmos.REG_B, cmos.B_24H | cmos.B_DM)
    assert reg(dev, cmos.HOURS) == 12 and reg(dev, cmos.MINUTES) == 30


def test_rtc_write_while_running_moves_the_clock_and_keeps_its_phase():
    clock = Clock(T0)
    dev = rtc(clock)
    reg(dev, cmos.MINUTES, 0x50)                  # +5 minutes
    assert reg(dev, cmos.MINUTES) == 0x50 and reg(dev, cmos.SECONDS) == 0x07
    assert dev.offset == 300
    reg(dev, cmos.DAY_OF_WEEK, 1)                 # derived from the date: changes nothing
    assert reg(dev, cmos.DAY_OF_WEEK) == 5 and dev.offset == 300


def test_rtc_uip_near_a_second_boundary():
    clock = Clock(math.floor(T0) + 0.5)
    dev = rtc(clock)
    assert reg(dev, cmos.REG_A) == 0x26
    clock.now = math.floor(T0) + 0.9998           # 200 us before the boundary
    assert reg(dev, cmos.REG_A) == 0x26 | cmos.A_UIP
    clock.now = math.floor(T0) + 0.9997           # 300 us before
    assert reg(dev, cmos.REG_A) == 0x26
    clock.now = math.floor(T0) + 1.00001          # just after: the new second, UIP off
    assert reg(dev, cmos.REG_A) == 0x26 and reg(dev, cmos.SECONDS) == 0x08
    # a time set by the guest starts its second when SET clears: the boundary moves with it
    clock.now = 1000.3
    reg(dev, cmos.REG_B, cmos.B_SET | cmos.B_24H)
    reg(dev, cmos.REG_B, cmos.B_24H)
    clock.now = 1001.2999
    assert reg(dev, cmos.REG_A) & cmos.A_UIP
    clock.now = 1000.9999
    assert not reg(dev, cmos.REG_A) & cmos.A_UIP


def test_rtc_status_registers_and_index_port():
    dev = rtc()
    reg(dev, cmos.REG_A, 0xA0)
    assert reg(dev, cmos.REG_A) == 0x20           # UIP is read-only
    reg(dev, cmos.REG_C, 0xFF)
    reg(dev, cmos.REG_D, 0x00)
    assert reg(dev, cmos.REG_C) == 0 and reg(dev, cmos.REG_D) == 0x80
    dev.write(0, 1, 0x80 | 0x0F)                  # NMI masked, shutdown status
    assert dev.nmi_masked and dev.index == 0x0F and dev.read(0, 1) == 0x8F
    dev.write(1, 1, 0x0A)
    dev.write(0, 1, 0x0F)
    assert not dev.nmi_masked and dev.read(1, 1) == 0x0A
    dev.write(0, 2, 0x5A40)                       # index 0x40, then 0x5A into it
    assert dev.index == 0x40 and dev.read(0, 2) == 0x5A40
    assert reg(dev, 0x7F, 0x11) is None and reg(dev, 0x7F) == 0x11
    dev.write(0, 1, 0xFF)                         # index 0x7F
    assert dev.index == 0x7F


def test_rtc_memory_bytes_64_mib():
    dev = rtc(ram=64 * MiB, low=64 * MiB, high=0, vcpus=1)
    word = lambda lo: reg(dev, lo) | reg(dev, lo + 1) << 8
    assert word(0x15) == 640
    assert word(0x17) == word(0x30) == 63 * 1024 == 0xFC00
    assert word(0x34) == 48 * 16                  # 16 MiB..64 MiB in 64 KiB units
    assert [reg(dev, i) for i in (0x5B, 0x5C, 0x5D)] == [0, 0, 0]
    assert reg(dev, 0x5F) == 0
    assert reg(dev, cmos.EQUIPMENT) == 0x06 and reg(dev, cmos.FLOPPY_TYPES) == 0


def test_rtc_memory_bytes_3_5_gib_and_cpus():
    dev = rtc(ram=3 * GiB + 512 * MiB, low=3 * GiB, high=512 * MiB, vcpus=4)
    word = lambda lo: reg(dev, lo) | reg(dev, lo + 1) << 8
    assert word(0x15) == 640
    assert word(0x17) == word(0x30) == 0xFFFF     # capped
    assert word(0x34) == (3 * GiB - 16 * MiB) // (64 * 1024) == 0xBF00
    assert reg(dev, 0x5B) | reg(dev, 0x5C) << 8 | reg(dev, 0x5D) << 16 == 512 * MiB // (64 * 1024)
    assert reg(dev, 0x5F) == 3


def test_rtc_memory_bytes_tiny_and_huge():
    dev = rtc(ram=512 * 1024, low=512 * 1024, high=0)
    assert reg(dev, 0x15) | reg(dev, 0x16) << 8 == 512
    assert [reg(dev, i) for i in (0x17, 0x18, 0x34, 0x35)] == [0, 0, 0, 0]
    dev = rtc(ram=(1 << 50), low=3 * GiB, high=(1 << 50) - 3 * GiB, vcpus=256)
    assert [reg(dev, i) for i in (0x5B, 0x5C, 0x5D, 0x5F)] == [0xFF, 0xFF, 0xFF, 255]


def test_rtc_save_restore_round_trip():
    clock = Clock(T0)
    dev = rtc(clock)
    reg(dev, cmos.REG_B, cmos.B_SET | cmos.B_24H)
    reg(dev, cmos.YEAR, 0x99)
    reg(dev, cmos.REG_B, cmos.B_24H)
    reg(dev, cmos.REG_B, cmos.B_24H | cmos.B_DM)
    reg(dev, 0x40, 0xAB)
    dev.write(0, 1, 0x80 | 0x40)
    saved = dev.save()
    assert set(saved) == {"index", "nmi_masked", "ram", "clock_offset"}
    clock2 = Clock(T0 + 3600)                     # restored an hour later: the guest's clock went on
    other = rtc(clock2, ram=GiB, low=GiB, vcpus=8)
    other.restore(saved)
    assert other.index == 0x40 and other.nmi_masked and other.read(1, 1) == 0xAB
    assert reg(other, cmos.YEAR) == 99 and reg(other, cmos.HOURS) == 14 and reg(other, 0x5F) == 0
    assert reg(other, cmos.REG_B) == cmos.B_24H | cmos.B_DM
    # a snapshot taken while SET holds the clock keeps the time being written
    reg(dev, cmos.REG_B, cmos.B_SET | cmos.B_24H | cmos.B_DM)
    reg(dev, cmos.SECONDS, 33)
    held = rtc(Clock(0))
    held.restore(dev.save())
    assert reg(held, cmos.SECONDS) == 33
    reg(held, cmos.REG_B, cmos.B_24H | cmos.B_DM)
    assert reg(held, cmos.SECONDS) == 33 and reg(held, cmos.YEAR) == 99


def _bad_ram(**changes):
    ram = bytearray(rtc().save()["ram"])
    for i, v in changes.items():
        ram[int(i, 16)] = v
    return bytes(ram)


@pytest.mark.parametrize("change, message", [
    ({"index": 128}, "index"), ({"index": -1}, "index"), ({"index": True}, "index"), ({"index": "1"}, "index"),
    ({"nmi_masked": 1}, "nmi_masked"),
    ({"ram": bytes(127)}, "128 bytes"), ({"ram": "00" * 128}, "128 bytes"), ({"ram": list(range(128))}, "128 bytes"),
    ({"ram": _bad_ram(**{"0x0a": 0xA6})}, "registers A-D"), ({"ram": _bad_ram(**{"0x0c": 0x80})}, "registers A-D"),
    ({"ram": _bad_ram(**{"0x0d": 0})}, "registers A-D"), ({"ram": _bad_ram(**{"0x0b": 0x92})}, "SET and UIE"),
    ({"clock_offset": math.nan}, "clock_offset"), ({"clock_offset": math.inf}, "clock_offset"),
    ({"clock_offset": 1e13}, "clock_offset"), ({"clock_offset": "0"}, "clock_offset"),
    ({"clock_offset": False}, "clock_offset"), ({"clock_offset": None}, "clock_offset"),
    ({"index": None, "drop": "index"}, "missing"), ({"extra": 1}, "unexpected"),
])
def test_rtc_restore_refuses(change, message):
    dev = rtc()
    state = {**dev.save(), **change}
    state.pop(change.get("drop", "drop"), None)
    before = dev.save()
    with pytest.raises(SnapshotError, match=message):
        dev.restore(state)
    assert dev.save() == before                   # nothing half-restored
    with pytest.raises(SnapshotError, match="dict"):
        dev.restore([1, 2])


# ---- PCI configuration mechanism #1, no devices; 0xCF9 ----
def test_pci_check_type1_then_no_device():
    resets = []
    dev = PciConfigAbsent(on_reset=lambda: resets.append(1))
    # Linux's pci_check_type1()
    dev.write(3, 1, 0x01)                         # outb(0x01, 0xCFB)
    tmp = dev.read(0, 4)                          # tmp = inl(0xCF8)
    dev.write(0, 4, 0x80000000)
    assert dev.read(0, 4) == 0x80000000           # type 1 it is
    dev.write(0, 4, tmp)
    # bus 0, device 0, function 0, register 0: vendor ID
    dev.write(0, 4, 0x80000000)
    assert dev.read(4, 2) == 0xFFFF and dev.read(6, 2) == 0xFFFF
    assert dev.read(4, 4) == 0xFFFFFFFF and dev.read(7, 1) == 0xFF
    dev.write(4, 4, 0x12345678)                   # writes vanish
    assert dev.read(4, 4) == 0xFFFFFFFF and dev.read(0, 4) == 0x80000000
    assert not resets


def test_pci_type2_probe_fails_and_narrow_accesses_do_not_latch():
    dev = PciConfigAbsent(on_reset=lambda: None)
    dev.write(0, 4, 0x8000_0010)
    dev.write(3, 1, 0)                            # pci_check_type2(): outb 0 to 0xCFB, 0xCF8, 0xCFA
    dev.write(0, 1, 0)
    dev.write(2, 1, 0)
    assert dev.read(0, 1) == 0xFF and dev.read(2, 1) == 0xFF   # wants 0, gets all ones
    dev.write(0, 2, 0)
    assert dev.read(0, 2) == 0xFFFF and dev.read(2, 2) == 0xFFFF
    assert dev.read(0, 4) == 0x8000_0010


def test_pci_cf9_reset_control():
    resets = []
    dev = PciConfigAbsent(on_reset=lambda: resets.append(1))
    assert dev.read(1, 1) == 0
    dev.write(1, 1, 0x02)                         # Linux: request a hard reset first...
    assert dev.read(1, 1) == 0x02 and not resets
    dev.write(1, 1, 0x0E)                         # ...then reset the CPU
    assert resets == [1] and dev.read(1, 1) == 0x0E
    dev.write(1, 1, 0xF1)
    assert dev.read(1, 1) == 0 and resets == [1]
    dev.write(0, 2, 0x0400)                       # a 16-bit access is not the RCR
    assert resets == [1]


def test_pci_save_restore():
    dev = PciConfigAbsent(on_reset=lambda: None)
    dev.write(0, 4, 0x8000_1234)
    dev.write(1, 1, 0x0A)
    other = PciConfigAbsent(on_reset=lambda: None)
    other.restore(dev.save())
    assert other.read(0, 4) == 0x8000_1234 and other.read(1, 1) == 0x0A and other.save() == dev.save()


@pytest.mark.parametrize("state, message", [
    ({"address": 1 << 32, "rcr": 0}, "address"), ({"address": -1, "rcr": 0}, "address"),
    ({"address": 1.0, "rcr": 0}, "address"), ({"address": 0, "rcr": 0x01}, "rcr"),
    ({"address": 0, "rcr": "2"}, "rcr"), ({"address": 0, "rcr": True}, "rcr"),
    ({"address": 0}, "missing"), ({"address": 0, "rcr": 0, "x": 0}, "unexpected"), ("{}", "dict"),
])
def test_pci_restore_refuses(state, message):
    dev = PciConfigAbsent(on_reset=lambda: None)
    with pytest.raises(SnapshotError, match=message):
        dev.restore(state)
    assert dev.save() == {"address": 0, "rcr": 0}


# ---- fw_cfg ----
def fw_item(dev, key, n):
    dev.write(fw_cfg.SELECTOR, 2, key)
    return bytes(dev.read(fw_cfg.DATA, 1) for _ in range(n))


def test_fw_cfg_items():
    dev = FwCfg(ram_size=3 * GiB + 512 * MiB, vcpus=4)
    assert fw_item(dev, 0x0000, 6) == b"QEMU\0\0"
    assert struct.unpack("<I", fw_item(dev, 0x0001, 4)) == (1,)
    assert struct.unpack("<Q", fw_item(dev, 0x0003, 8)) == (3 * GiB + 512 * MiB,)
    assert struct.unpack("<H", fw_item(dev, 0x0005, 2)) == (4,)
    assert struct.unpack("<H", fw_item(dev, 0x000F, 2)) == (4,)
    assert fw_item(dev, 0x0019, 8) == bytes(8)    # a big-endian count of 0 files, then nothing
    assert fw_item(dev, 0x1234, 4) == bytes(4)    # unknown keys read 0
    assert fw_item(dev, 0x8000, 4) == bytes(4)


def test_fw_cfg_selector_rewinds_and_reads_back():
    dev = FwCfg(ram_size=64 * MiB, vcpus=1)
    assert fw_item(dev, 0, 2) == b"QE"
    dev.write(fw_cfg.SELECTOR, 1, 0x19)           # an 8-bit selector write is ignored
    assert dev.read(fw_cfg.DATA, 1) == ord("M")
    dev.write(fw_cfg.DATA, 1, 0x55)               # the data port takes no writes
    assert dev.read(fw_cfg.DATA, 1) == ord("U")
    assert dev.read(fw_cfg.SELECTOR, 2) == 0
    assert fw_item(dev, 0, 4) == b"QEMU"          # reselecting starts over
    dev.write(fw_cfg.SELECTOR, 2, 0xABCD)
    assert dev.read(fw_cfg.SELECTOR, 2) == 0xABCD and dev.read(fw_cfg.SELECTOR, 1) == 0xCD


def test_fw_cfg_save_restore_mid_item():
    dev = FwCfg(ram_size=64 * MiB, vcpus=2)
    assert fw_item(dev, 0, 2) == b"QE"
    other = FwCfg(ram_size=64 * MiB, vcpus=2)
    other.restore(dev.save())
    assert bytes(other.read(fw_cfg.DATA, 1) for _ in range(3)) == b"MU\0"
    dev.restore({"selector": 0x1234, "offset": 0})   # an unknown key is a state a guest can reach


@pytest.mark.parametrize("state, message", [
    ({"selector": 0x10000, "offset": 0}, "selector"), ({"selector": -1, "offset": 0}, "selector"),
    ({"selector": "0", "offset": 0}, "selector"), ({"selector": 0, "offset": 5}, "offset"),
    ({"selector": 0x1234, "offset": 1}, "offset"), ({"selector": 0, "offset": -1}, "offset"),
    ({"selector": 0, "offset": 1.0}, "offset"), ({"selector": 0}, "missing"),
    ({"selector": 0, "offset": 0, "dma": 0}, "unexpected"), (None, "dict"),
])
def test_fw_cfg_restore_refuses(state, message):
    dev = FwCfg(ram_size=64 * MiB, vcpus=1)
    with pytest.raises(SnapshotError, match=message):
        dev.restore(state)
    assert dev.save() == {"selector": 0, "offset": 0}


# ---- ACPI PM block ----
S5 = (acpi_pm.SLP_TYP_S5 << acpi_pm.SLP_TYP_SHIFT)


def pm(clock=None):
    offs = []
    dev = AcpiPm(on_poweroff=lambda: offs.append(1), clock=clock or Clock(0))
    return dev, offs


def test_acpi_poweroff_by_slp_typ_5_and_slp_en():
    dev, offs = pm()
    dev.write(acpi_pm.PM1_CNT, 2, S5 | acpi_pm.SCI_EN)          # Linux sets SLP_TYP first...
    assert not offs
    dev.write(acpi_pm.PM1_CNT, 2, S5 | acpi_pm.SCI_EN | acpi_pm.SLP_EN)   # ...then SLP_EN
    assert offs == [1]
    assert dev.read(acpi_pm.PM1_CNT, 2) == S5 | acpi_pm.SCI_EN  # SLP_EN is write-only
    dev, offs = pm()
    dev.write(acpi_pm.PM1_CNT + 1, 1, (S5 | acpi_pm.SLP_EN) >> 8)   # the high byte alone
    assert offs == [1]


@pytest.mark.parametrize("slp_typ", [0, 1, 3, 4, 6, 7])
def test_acpi_other_sleep_types_are_ignored(slp_typ):
    dev, offs = pm()
    dev.write(acpi_pm.PM1_CNT, 2, (slp_typ << acpi_pm.SLP_TYP_SHIFT) | acpi_pm.SLP_EN)
    assert not offs
    assert dev.read(acpi_pm.PM1_CNT, 2) == (slp_typ << acpi_pm.SLP_TYP_SHIFT) | acpi_pm.SCI_EN


def test_acpi_sci_en_always_reads_1_and_registers():
    dev, _ = pm()
    assert dev.read(acpi_pm.PM1_CNT, 2) & acpi_pm.SCI_EN
    dev.write(acpi_pm.PM1_CNT, 2, 0)
    assert dev.read(acpi_pm.PM1_CNT, 2) == acpi_pm.SCI_EN
    dev.write(acpi_pm.PM1_EN, 2, 0xFFFF)
    assert dev.read(acpi_pm.PM1_EN, 2) == acpi_pm.PM1_EN_MASK
    assert dev.read(acpi_pm.PM1_STS, 4) == acpi_pm.PM1_EN_MASK << 16   # status 0, then enable
    assert dev.read(6, 2) == 0                                  # reserved
    dev.restore({**dev.save(), "status": acpi_pm.STS_PWRBTN | acpi_pm.STS_TMR})
    dev.write(acpi_pm.PM1_STS, 2, acpi_pm.STS_TMR)              # write 1 to clear
    assert dev.read(acpi_pm.PM1_STS, 2) == acpi_pm.STS_PWRBTN
    dev.write(acpi_pm.PM1_STS + 1, 1, acpi_pm.STS_PWRBTN >> 8)
    assert dev.read(acpi_pm.PM1_STS, 2) == 0


def test_acpi_pm_timer_runs_at_3_58_mhz_and_wraps_at_24_bits():
    clock = Clock(1_000_000_000)
    dev, _ = pm(clock)
    assert dev.read(acpi_pm.PM_TMR, 4) == 0
    clock.now += 1_000_000                                      # 1 ms
    assert dev.read(acpi_pm.PM_TMR, 4) == 3579
    clock.now += 999_000_000                                    # 1 s in all
    assert dev.read(acpi_pm.PM_TMR, 4) == 3_579_545
    assert dev.read(acpi_pm.PM_TMR, 2) == 3_579_545 & 0xFFFF and dev.read(acpi_pm.PM_TMR + 2, 1) == 3_579_545 >> 16
    clock.now += 4_000_000_000                                  # 5 s: 17.9 M ticks, past 2**24
    assert dev.read(acpi_pm.PM_TMR, 4) == (5 * 3_579_545) % (1 << 24)
    assert dev.read(acpi_pm.PM_TMR + 3, 1) == 0                 # bits 24-31 read 0
    dev.write(acpi_pm.PM_TMR, 4, 0)                             # read-only
    assert dev.read(acpi_pm.PM_TMR, 4) == (5 * 3_579_545) % (1 << 24)


def test_acpi_save_restore_counts_on_from_the_saved_timer():
    clock = Clock(0)
    dev, _ = pm(clock)
    dev.write(acpi_pm.PM1_EN, 2, acpi_pm.STS_PWRBTN)
    dev.write(acpi_pm.PM1_CNT, 2, 3 << acpi_pm.SLP_TYP_SHIFT)
    clock.now = 2_000_000_000
    saved = dev.save()
    assert saved["timer"] == 2 * 3_579_545
    clock2 = Clock(987_654_321_000)                             # another host clock entirely
    other, offs = pm(clock2)
    other.restore(saved)
    assert other.save() == saved
    clock2.now += 1_000_000_000
    assert other.read(acpi_pm.PM_TMR, 4) == 3 * 3_579_545
    assert other.read(acpi_pm.PM1_EN, 2) == acpi_pm.STS_PWRBTN
    assert other.read(acpi_pm.PM1_CNT, 2) == (3 << acpi_pm.SLP_TYP_SHIFT) | acpi_pm.SCI_EN and not offs


@pytest.mark.parametrize("change, message", [
    ({"status": 0x0002}, "status"), ({"status": -1}, "status"), ({"enable": 0x8000}, "enable"),
    ({"enable": "0"}, "enable"), ({"control": 0}, "control"), ({"control": acpi_pm.SCI_EN | acpi_pm.SLP_EN}, "control"),
    ({"timer": 1 << 24}, "timer"), ({"timer": 1.5}, "timer"), ({"timer": True}, "timer"),
    ({"drop": "timer"}, "missing"), ({"x": 0}, "unexpected"),
])
def test_acpi_restore_refuses(change, message):
    dev, _ = pm()
    state = {**dev.save(), **change}
    state.pop(change.get("drop", "drop"), None)
    before = dev.save()
    with pytest.raises(SnapshotError, match=message):
        dev.restore(state)
    assert dev.save() == before
    with pytest.raises(SnapshotError, match="dict"):
        dev.restore(None)


# ---- any guest input: never an exception, and every reachable state saves and restores ----
def _devices(clock):
    return [
        (lambda: rtc(clock, ram=3 * GiB + 512 * MiB, low=3 * GiB, high=512 * MiB, vcpus=4), cmos.SIZE),
        (lambda: PciConfigAbsent(on_reset=lambda: None), pci.SIZE),
        (lambda: FwCfg(ram_size=64 * MiB, vcpus=2), fw_cfg.SIZE),
        (lambda: AcpiPm(on_poweroff=lambda: None, clock=lambda: int(clock() * 1e9)), acpi_pm.SIZE),
    ]


access = st.tuples(st.booleans(), st.integers(0, 11), st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF),
                   st.floats(0, 5e4))


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 3), accesses=st.lists(access, max_size=60))
def test_guest_accesses_never_raise_and_states_restore(which, accesses):
    clock = Clock(T0)
    make, size = _devices(clock)[which]
    dev = make()
    for is_write, offset, width, value, dt in accesses:
        if offset + width > size:
            continue                              # the bus never delivers these
        clock.now += dt
        if is_write:
            dev.write(offset, width, value & ((1 << (8 * width)) - 1))
        else:
            assert 0 <= dev.read(offset, width) < 1 << (8 * width)
    saved = dev.save()
    other = make()
    other.restore(saved)
    assert other.save() == saved
