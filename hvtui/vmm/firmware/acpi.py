"""The ACPI 6 tables: RSDP -> RSDT/XSDT -> FADT (-> FACS, DSDT) and MADT, in one blob.

The blob lies in 0xE0000-0xFFFFF with the RSDP first, where kernels search for it on
16-byte boundaries. It describes the fixed hardware the PM device serves (PM1a event
and control blocks, PM timer, reset register, SCI on IRQ 9), the CPUs, the IOAPIC and
the interrupt routing, and `\\_S5` (soft-off) in the DSDT's AML.
"""
import struct

from hvtui.vmm.firmware import (IOAPIC_ADDR, IOAPIC_PINS, IOAPIC_VERSION, LAPIC_ADDR,  # noqa: F401
                                LAPIC_VERSION, SCI_IRQ, check_vcpus, ioapic_id, with_checksum)

REGION = (0xE_0000, 0x10_0000)   # where the RSDP must lie
BLOB_LIMIT = 64 * 1024

PM1A_EVT_BLK = 0x600             # PM1 status (2 bytes) and enable (2 bytes)
PM1A_CNT_BLK = 0x604             # PM1 control (2 bytes): SCI_EN, SLP_TYP, SLP_EN
PM_TMR_BLK = 0x608               # 24-bit PM timer, 3.579545 MHz
PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN = 4, 2, 4
RESET_PORT = 0xCF9
RESET_VALUE = 0x06
S5_SLP_TYP = 5                   # \_S5's SLP_TYPa/b: what the OS writes to PM1a_CNT.SLP_TYP

OEM_ID = b"HVTUI "
OEM_TABLE_ID = b"HVTUIPC "
OEM_REVISION = 1
CREATOR_ID = b"HVTU"
CREATOR_REVISION = 1

HEADER = struct.Struct("<4sIBB6s8sI4sI")        # signature, length, revision, checksum, ...
RSDP = struct.Struct("<8sB6sBIIQB3x")           # ..., checksum, OEMID, rev, RSDT, length, XSDT, ext checksum
FACS = struct.Struct("<4sIIIIIQB3xI24x")        # signature, length, ..., version, OSPM flags
GAS = struct.Struct("<BBBBQ")                   # space, bit width, bit offset, access size, address
FADT_LENGTH = 276
FACS_LENGTH = 64

SYSTEM_IO = 1
BYTE_ACCESS, WORD_ACCESS, DWORD_ACCESS = 1, 2, 3
IAPC_LEGACY_DEVICES, IAPC_8042 = 1 << 0, 1 << 1
FADT_WBINVD, FADT_PROC_C1, FADT_PWR_BUTTON, FADT_SLP_BUTTON = 1 << 0, 1 << 2, 1 << 4, 1 << 5
FADT_RESET_REG_SUP = 1 << 10
MADT_PCAT_COMPAT = 1
LAPIC_ENABLED = 1
SCI_FLAGS = 0x000D               # MPS INTI flags: active high (01), level-triggered (11)
ALL_PROCESSORS = 0xFF


def build(base: int, vcpus: int) -> tuple[bytes, int]:
    """The ACPI tables as one blob to put at guest-physical base, and the RSDP's address."""
    check_vcpus(vcpus)
    if base % 16 or not REGION[0] <= base < REGION[1]:
        raise ValueError(f"ACPI base {base:#x} is not 16-byte aligned in {REGION[0]:#x}-{REGION[1] - 1:#x}")
    dsdt_, madt_ = dsdt(), madt(vcpus)
    at = place(base, {"RSDP": (RSDP.size, 16), "RSDT": (HEADER.size + 2 * 4, 8),
                      "XSDT": (HEADER.size + 2 * 8, 8), "FACP": (FADT_LENGTH, 8),
                      "FACS": (FACS_LENGTH, 64), "DSDT": (len(dsdt_), 8), "APIC": (len(madt_), 8)})
    tables = {"RSDP": rsdp(at["RSDT"], at["XSDT"]),
              "RSDT": rsdt([at["FACP"], at["APIC"]]),
              "XSDT": xsdt([at["FACP"], at["APIC"]]),
              "FACP": fadt(at["FACS"], at["DSDT"]),
              "FACS": facs(), "DSDT": dsdt_, "APIC": madt_}
    blob = assemble(base, at, tables)
    if len(blob) > BLOB_LIMIT or base + len(blob) > REGION[1]:
        raise ValueError(f"ACPI tables ({len(blob)} bytes) do not fit at {base:#x}")
    return blob, at["RSDP"]


def place(base: int, sizes: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Each table's address, in order from base, each aligned as (size, alignment) says."""
    at, addr = {}, base
    for name, (size, align) in sizes.items():
        addr = -(-addr // align) * align
        at[name] = addr
        addr += size
    return at


def assemble(base: int, at: dict[str, int], tables: dict[str, bytes]) -> bytes:
    blob = bytearray(max(at[n] + len(t) for n, t in tables.items()) - base)
    for name, table in tables.items():
        blob[at[name] - base:at[name] - base + len(table)] = table
    return bytes(blob)


def table(signature: bytes, revision: int, body: bytes) -> bytes:
    """A system description table: the common header (length, checksum, OEM fields) + body."""
    raw = HEADER.pack(signature, HEADER.size + len(body), revision, 0, OEM_ID, OEM_TABLE_ID,
                      OEM_REVISION, CREATOR_ID, CREATOR_REVISION) + body
    return with_checksum(raw, 9)


def rsdp(rsdt_addr: int, xsdt_addr: int) -> bytes:
    raw = RSDP.pack(b"RSD PTR ", 0, OEM_ID, 2, rsdt_addr, RSDP.size, xsdt_addr, 0)
    return with_checksum(with_checksum(raw, 8, 20), 32)    # ACPI 1.0 part, then all 36


def rsdt(addrs: list[int]) -> bytes:
    return table(b"RSDT", 1, b"".join(struct.pack("<I", a) for a in addrs))


def xsdt(addrs: list[int]) -> bytes:
    return table(b"XSDT", 1, b"".join(struct.pack("<Q", a) for a in addrs))


def gas(address: int, bit_width: int, access: int) -> bytes:
    """A Generic Address Structure in system I/O space."""
    return GAS.pack(SYSTEM_IO, bit_width, 0, access, address)


def fadt(facs_addr: int, dsdt_addr: int) -> bytes:
    """FADT revision 6.0 (276 bytes). SMI_CMD 0: no SMM, always in ACPI mode."""
    t = bytearray(FADT_LENGTH)
    for offset, fmt, value in (
            (36, "<I", facs_addr),                  # FIRMWARE_CTRL
            (40, "<I", dsdt_addr),                  # DSDT
            (46, "<H", SCI_IRQ),                    # SCI_INT
            (56, "<I", PM1A_EVT_BLK),
            (64, "<I", PM1A_CNT_BLK),
            (76, "<I", PM_TMR_BLK),
            (88, "<BBBB", (PM1_EVT_LEN, PM1_CNT_LEN, 0, PM_TMR_LEN)),   # no PM2, no GPEs
            (96, "<HH", (101, 1001)),               # P_LVL2_LAT, P_LVL3_LAT: no C2, no C3
            (108, "<B", 0x32),                      # CENTURY: the RTC's century byte (CMOS 0x32)
            (109, "<H", IAPC_LEGACY_DEVICES | IAPC_8042),
            (112, "<I", FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON
             | FADT_RESET_REG_SUP),
            (116, "<12s", gas(RESET_PORT, 8, BYTE_ACCESS)),  # RESET_REG
            (128, "<B", RESET_VALUE),
            (131, "<B", 0),                         # FADT minor version
            (132, "<Q", facs_addr),                 # X_FIRMWARE_CTRL
            (140, "<Q", dsdt_addr),                 # X_DSDT
            (148, "<12s", gas(PM1A_EVT_BLK, 8 * PM1_EVT_LEN, WORD_ACCESS)),
            (172, "<12s", gas(PM1A_CNT_BLK, 8 * PM1_CNT_LEN, WORD_ACCESS)),
            (208, "<12s", gas(PM_TMR_BLK, 8 * PM_TMR_LEN, DWORD_ACCESS))):
        struct.pack_into(fmt, t, offset, *(value if isinstance(value, tuple) else (value,)))
    return table(b"FACP", 6, bytes(t[HEADER.size:]))


def facs() -> bytes:
    """FACS version 2; no checksum (the OS writes into it)."""
    return FACS.pack(b"FACS", FACS_LENGTH, 0, 0, 0, 0, 0, 2, 0)


def dsdt() -> bytes:
    return table(b"DSDT", 2, s5_aml())


def s5_aml() -> bytes:
    """Name (\\_S5, Package (0x04) {0x05, 0x05, 0x00, 0x00}): SLP_TYPa, SLP_TYPb, reserved."""
    elements = bytes([4, 0x0A, S5_SLP_TYP, 0x0A, S5_SLP_TYP, 0x00, 0x00])   # NumElements, ...
    return b"\x08\\_S5_" + b"\x12" + pkg_length(len(elements)) + elements   # NameOp, PackageOp


def pkg_length(body: int) -> bytes:
    """AML PkgLength for body bytes following it (the encoding counts its own bytes)."""
    if body + 1 < 0x40:
        return bytes([body + 1])
    for extra in (1, 2, 3):
        total = body + 1 + extra
        if total < 1 << (4 + 8 * extra):
            return bytes([extra << 6 | total & 0xF]) + (total >> 4).to_bytes(extra, "little")
    raise ValueError(f"AML package of {body} bytes is too long")


def madt(vcpus: int) -> bytes:
    """MADT revision 5: a LAPIC per vCPU, the IOAPIC, the SCI's override, NMI on LINT1.

    ISA IRQs map identity to GSIs (IRQ n -> IOAPIC pin n) because KVM's default GSI
    routing wires GSI n to pin n and the PIT is on GSI 0: so there is no IRQ0 -> GSI2
    override, only the SCI's (same GSI, but level-triggered, active high)."""
    body = struct.pack("<II", LAPIC_ADDR, MADT_PCAT_COMPAT)
    body += b"".join(struct.pack("<BBBBI", 0, 8, i, i, LAPIC_ENABLED) for i in range(vcpus))
    body += struct.pack("<BBBxII", 1, 12, ioapic_id(vcpus), IOAPIC_ADDR, 0)          # GSI base 0
    body += struct.pack("<BBBBIH", 2, 10, 0, SCI_IRQ, SCI_IRQ, SCI_FLAGS)           # ISA bus
    body += struct.pack("<BBBHB", 4, 6, ALL_PROCESSORS, 0, 1)                       # LINT1
    return table(b"APIC", 5, body)
