"""The tables a PC's firmware leaves in memory for the kernel: the Intel MP table
(mptable.py) and the ACPI tables (acpi.py). Both describe the same machine, whose
facts are here: one LAPIC per vCPU (IDs 0..N-1), one IOAPIC with ID N, legacy 8259
PICs, and the ACPI SCI on ISA IRQ 9 (level-triggered, active high).

Pure functions returning bytes; they know nothing of KVM.
"""

LAPIC_ADDR = 0xFEE0_0000
LAPIC_VERSION = 0x14
IOAPIC_ADDR = 0xFEC0_0000
IOAPIC_VERSION = 0x11
IOAPIC_PINS = 24
MAX_VCPUS = 255          # xAPIC IDs are 8 bits and 0xFF means "all"
SCI_IRQ = 9              # the ACPI SCI: ISA IRQ 9 -> GSI 9, level, active high


def check_vcpus(vcpus: int) -> None:
    if not 1 <= vcpus <= MAX_VCPUS:
        raise ValueError(f"vCPUs must be 1..{MAX_VCPUS}, not {vcpus}")


def ioapic_id(vcpus: int) -> int:
    """The IOAPIC's ID: the first one after the LAPICs'."""
    check_vcpus(vcpus)
    return vcpus


def checksum(data: bytes) -> int:
    """The byte that makes data's bytes (with it in place of a 0) sum to 0 mod 256."""
    return -sum(data) & 0xFF


def with_checksum(raw: bytes, offset: int, end: int | None = None) -> bytes:
    """raw with the checksum of raw[:end] (all of it by default) in its 0 byte at offset."""
    return raw[:offset] + bytes([checksum(raw[:end])]) + raw[offset + 1:]
