"""The Intel MultiProcessor Specification 1.4 table: a 16-byte floating pointer ("_MP_")
followed by the configuration table ("PCMP") listing the CPUs, the ISA bus, the IOAPIC
and how the ISA IRQs and the LAPICs' LINT pins are wired. For kernels without ACPI.

Kernels search for the floating pointer on 16-byte boundaries in the first KiB of the
EBDA, the last KiB of base memory and 0xF0000-0xFFFFF.
"""
import struct

from hvtui.vmm.firmware import (IOAPIC_ADDR, IOAPIC_VERSION, LAPIC_ADDR, LAPIC_VERSION, SCI_IRQ,
                                check_vcpus, ioapic_id, with_checksum)

SPEC_REV = 4                     # MP spec 1.4
OEM_ID = b"HVTUI   "
PRODUCT_ID = b"HVTUI PC    "
LIMIT = 0x10_0000                # the table must lie below 1 MiB

FLOATING = struct.Struct("<4sIBBB5s")           # signature, config table, length/16, rev, checksum, features
HEADER = struct.Struct("<4sHBB8s12sIHHIHBx")    # ... entry count, LAPIC address, ext length, ext checksum
PROCESSOR = struct.Struct("<BBBBII8x")          # type 0: LAPIC ID, version, flags, signature, features
BUS = struct.Struct("<BB6s")                    # type 1: bus ID, type string
IOAPIC = struct.Struct("<BBBBI")                # type 2: ID, version, flags, address
INTERRUPT = struct.Struct("<BBHBBBB")           # types 3 and 4: kind, flags, bus, IRQ, dest ID, pin

CPU_ENABLED, CPU_BSP = 1, 2
CPU_SIGNATURE = 0x0000_0600      # family 6; kernels only print it
CPU_FEATURES = 0x0000_0201       # CPUID.1:EDX FPU | APIC
IOAPIC_ENABLED = 1
INT, NMI, EXTINT = 0, 1, 3
CONFORMING = 0x0
LEVEL_HIGH = 0x1 | 0x3 << 2      # polarity active high, trigger level
ALL_LAPICS = 0xFF
ISA_BUS = 0


def build(base: int, vcpus: int) -> bytes:
    """The floating pointer at base and the configuration table after it (base + 16)."""
    check_vcpus(vcpus)
    if base < 0 or base % 16:
        raise ValueError(f"MP table base {base:#x} is not 16-byte aligned")
    config = config_table(vcpus)
    blob = floating_pointer(base + FLOATING.size) + config
    if base + len(blob) > LIMIT:
        raise ValueError(f"MP table at {base:#x} ({len(blob)} bytes) does not fit below 1 MiB")
    return blob


def floating_pointer(config_addr: int) -> bytes:
    # feature byte 1 = 0: the configuration table is present; byte 2 bit 7 = 0: virtual
    # wire mode (no IMCR)
    raw = FLOATING.pack(b"_MP_", config_addr, 1, SPEC_REV, 0, bytes(5))
    return with_checksum(raw, 10)


def config_table(vcpus: int) -> bytes:
    entries = processors(vcpus) + [bus(), ioapic(vcpus)] + io_interrupts(vcpus) + local_interrupts()
    body = b"".join(entries)
    raw = HEADER.pack(b"PCMP", HEADER.size + len(body), SPEC_REV, 0, OEM_ID, PRODUCT_ID,
                      0, 0, len(entries), LAPIC_ADDR, 0, 0) + body
    return with_checksum(raw, 7)


def processors(vcpus: int) -> list[bytes]:
    return [PROCESSOR.pack(0, i, LAPIC_VERSION, CPU_ENABLED | (CPU_BSP if i == 0 else 0),
                           CPU_SIGNATURE, CPU_FEATURES) for i in range(vcpus)]


def bus() -> bytes:
    return BUS.pack(1, ISA_BUS, b"ISA   ")


def ioapic(vcpus: int) -> bytes:
    return IOAPIC.pack(2, ioapic_id(vcpus), IOAPIC_VERSION, IOAPIC_ENABLED, IOAPIC_ADDR)


def io_interrupts(vcpus: int) -> list[bytes]:
    """ISA IRQ n on IOAPIC pin n, as KVM's default GSI routing wires them (the PIT is on
    GSI 0, so there is no IRQ0 -> pin 2 entry); IRQ 2 is the PICs' cascade. The SCI is
    level-triggered, active high."""
    dest = ioapic_id(vcpus)
    return [INTERRUPT.pack(3, INT, LEVEL_HIGH if irq == SCI_IRQ else CONFORMING, ISA_BUS, irq, dest, irq)
            for irq in range(16) if irq != 2]


def local_interrupts() -> list[bytes]:
    """The 8259s' ExtINT on every LAPIC's LINT0, NMI on LINT1."""
    return [INTERRUPT.pack(4, EXTINT, CONFORMING, ISA_BUS, 0, ALL_LAPICS, 0),
            INTERRUPT.pack(4, NMI, CONFORMING, ISA_BUS, 0, ALL_LAPICS, 1)]
