"""The MP and ACPI tables, parsed back independently with struct (no KVM): checksums,
lengths, the RSDP found as Linux finds it, FADT offsets per the ACPI 6 layout, MADT
and MP entries, and the \\_S5 AML."""
import struct

import pytest

from hvtui.vmm.firmware import acpi, mptable

ACPI_BASE = 0xE0000
MP_BASE = 0xF0000
BIOS_REGION = (0xE0000, 0x100000)


def byte_sum(data: bytes) -> int:
    return sum(data) & 0xFF


def bios_memory(base: int, blob: bytes) -> bytes:
    """0xE0000-0xFFFFF with blob at base and junk elsewhere."""
    mem = bytearray(b"\xA5" * (BIOS_REGION[1] - BIOS_REGION[0]))
    mem[base - BIOS_REGION[0]:base - BIOS_REGION[0] + len(blob)] = blob
    return bytes(mem)


class Mem:
    """Guest-physical reads from a byte string placed at start."""

    def __init__(self, start: int, data: bytes):
        self.start, self.data = start, data

    def read(self, addr: int, n: int) -> bytes:
        off = addr - self.start
        assert 0 <= off and off + n <= len(self.data), f"{addr:#x}+{n} outside the blob"
        return self.data[off:off + n]

    def table(self, addr: int) -> bytes:
        """A whole system description table (its length from its header)."""
        (length,) = struct.unpack("<I", self.read(addr + 4, 4))
        return self.read(addr, length)


# ---- ACPI: parsing -----------------------------------------------------------------

def find_rsdp(mem: bytes, start: int) -> int:
    """As Linux's acpi_find_root_pointer scans 0xE0000-0xFFFFF: 16-byte steps, the
    signature, the ACPI 1.0 checksum over 20 bytes, and (revision >= 2) over length."""
    for off in range(0, len(mem) - 36 + 1, 16):
        if mem[off:off + 8] != b"RSD PTR " or byte_sum(mem[off:off + 20]):
            continue
        if mem[off + 15] >= 2 and byte_sum(mem[off:off + struct.unpack_from("<I", mem, off + 20)[0]]):
            continue
        return start + off
    raise AssertionError("no RSDP")


def header(t: bytes) -> dict:
    sig, length, rev, _, oem, oem_table, oem_rev, creator, creator_rev = struct.unpack_from("<4sIBB6s8sI4sI", t)
    return dict(sig=sig, length=length, rev=rev, oem=oem, oem_table=oem_table, oem_rev=oem_rev,
                creator=creator, creator_rev=creator_rev)


def parse_acpi(base: int, vcpus: int) -> dict:
    blob, rsdp_addr = acpi.build(base, vcpus)
    mem = Mem(base, blob)
    rsdp = mem.read(rsdp_addr, 36)
    sig, csum, oem, rev, rsdt_addr, length, xsdt_addr, ext = struct.unpack("<8sB6sBIIQB3x", rsdp)
    rsdt, xsdt = mem.table(rsdt_addr), mem.table(xsdt_addr)
    rsdt_entries = list(struct.unpack_from(f"<{(len(rsdt) - 36) // 4}I", rsdt, 36))
    xsdt_entries = list(struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36))
    tables = {mem.read(a, 4): (a, mem.table(a)) for a in xsdt_entries}
    fadt_addr, fadt = tables[b"FACP"]
    facs_addr, dsdt_addr = struct.unpack_from("<Q", fadt, 132)[0], struct.unpack_from("<Q", fadt, 140)[0]
    return dict(blob=blob, mem=mem, rsdp_addr=rsdp_addr, rsdp=rsdp, rsdp_rev=rev, rsdp_oem=oem,
                rsdp_length=length, rsdt_addr=rsdt_addr, xsdt_addr=xsdt_addr, rsdt=rsdt, xsdt=xsdt,
                rsdt_entries=rsdt_entries, xsdt_entries=xsdt_entries, tables=tables,
                fadt=fadt, fadt_addr=fadt_addr, facs_addr=facs_addr, facs=mem.read(facs_addr, 64),
                dsdt_addr=dsdt_addr, dsdt=mem.table(dsdt_addr), madt=tables[b"APIC"][1])


def madt_entries(madt: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 44
    while off < len(madt):
        kind, length = madt[off], madt[off + 1]
        assert length >= 2 and off + length <= len(madt)
        out.append((kind, madt[off + 2:off + length]))
        off += length
    assert off == len(madt)
    return out


def pkg_length(aml: bytes, i: int) -> tuple[int, int]:
    """(PkgLength value, bytes it takes) at aml[i], per the AML grammar."""
    lead = aml[i]
    extra = lead >> 6
    if extra == 0:
        return lead & 0x3F, 1
    value = lead & 0x0F
    for k in range(extra):
        value |= aml[i + 1 + k] << (4 + 8 * k)
    return value, 1 + extra


def decode_s5(aml: bytes) -> list[int]:
    """Name (\\_S5, Package () {...}) with ByteConst/Zero/One elements."""
    assert aml[:6] == b"\x08\\_S5_" and aml[6] == 0x12       # NameOp, RootChar, NameSeg, PackageOp
    length, used = pkg_length(aml, 7)
    pkg = aml[7:7 + length]
    assert len(pkg) == length
    count, i, values = pkg[used], used + 1, []
    while i < len(pkg):
        op = pkg[i]
        if op == 0x0A:                                          # BytePrefix
            values.append(pkg[i + 1])
            i += 2
        else:
            assert op in (0x00, 0x01), f"unexpected opcode {op:#x}"   # ZeroOp, OneOp
            values.append(op)
            i += 1
    assert len(values) == count
    return values


# ---- ACPI: tests -------------------------------------------------------------------

@pytest.mark.parametrize("base", [0xE0000, 0xE1230, 0xF0000, 0xFF000])
def test_rsdp_found_by_scanning_like_linux(base):
    blob, rsdp_addr = acpi.build(base, 2)
    assert rsdp_addr == base
    assert find_rsdp(bios_memory(base, blob), BIOS_REGION[0]) == rsdp_addr


@pytest.mark.parametrize("vcpus", [1, 2, 64, 255])
def test_every_checksum_and_length(vcpus):
    a = parse_acpi(ACPI_BASE, vcpus)
    rsdp = a["rsdp"]
    assert rsdp[:8] == b"RSD PTR " and a["rsdp_rev"] == 2 and a["rsdp_oem"] == b"HVTUI "
    assert a["rsdp_length"] == 36 and byte_sum(rsdp[:20]) == 0 and byte_sum(rsdp) == 0
    for t in [a["rsdt"], a["xsdt"], a["dsdt"]] + [t for _, t in a["tables"].values()]:
        h = header(t)
        assert byte_sum(t) == 0, h["sig"]
        assert h["oem"] == b"HVTUI " and h["oem_table"] == b"HVTUIPC " and h["oem_rev"] == 1
        assert h["creator"] == b"HVTU" and h["creator_rev"] == 1
    assert len(a["rsdt"]) == 36 + 4 * 2 and len(a["xsdt"]) == 36 + 8 * 2
    assert header(a["fadt"])["length"] == 276 and header(a["fadt"])["rev"] == 6
    assert header(a["madt"])["rev"] == 5 and header(a["dsdt"])["rev"] == 2
    assert len(a["madt"]) == 44 + 8 * vcpus + 12 + 10 + 6
    assert len(a["blob"]) <= 64 * 1024


def test_rsdt_and_xsdt_list_the_fadt_and_madt():
    a = parse_acpi(ACPI_BASE, 2)
    assert a["rsdt_entries"] == a["xsdt_entries"]
    assert sorted(a["tables"]) == [b"APIC", b"FACP"]
    assert struct.unpack_from("<I", a["rsdp"], 16)[0] == a["rsdt_addr"]
    assert struct.unpack_from("<Q", a["rsdp"], 24)[0] == a["xsdt_addr"]


def test_tables_are_aligned_and_inside_the_blob():
    a = parse_acpi(0xE0010, 3)
    for addr in [a["rsdt_addr"], a["xsdt_addr"], a["dsdt_addr"]] + [x for x, _ in a["tables"].values()]:
        assert addr % 8 == 0
    assert a["facs_addr"] % 64 == 0 and a["rsdp_addr"] % 16 == 0
    assert 0xE0000 <= a["rsdp_addr"] and a["rsdp_addr"] + len(a["blob"]) <= 0x100000


def test_fadt_fields_at_their_acpi6_offsets():
    a = parse_acpi(ACPI_BASE, 1)
    f = a["fadt"]
    u8 = lambda off: f[off]                                   # noqa: E731
    u16 = lambda off: struct.unpack_from("<H", f, off)[0]     # noqa: E731
    u32 = lambda off: struct.unpack_from("<I", f, off)[0]     # noqa: E731
    u64 = lambda off: struct.unpack_from("<Q", f, off)[0]     # noqa: E731
    gas = lambda off: struct.unpack_from("<BBBBQ", f, off)    # noqa: E731
    assert len(f) == 276
    assert u32(36) == a["facs_addr"] and u64(132) == a["facs_addr"]    # FIRMWARE_CTRL, X_
    assert u32(40) == a["dsdt_addr"] and u64(140) == a["dsdt_addr"]    # DSDT, X_DSDT
    assert u16(46) == 9                                                 # SCI_INT
    assert u32(48) == 0 and u8(52) == 0 and u8(53) == 0                 # SMI_CMD, ACPI_EN/DIS
    assert u32(56) == 0x600 and u32(60) == 0                            # PM1a/b_EVT_BLK
    assert u32(64) == 0x604 and u32(68) == 0 and u32(72) == 0           # PM1a/b_CNT, PM2_CNT
    assert u32(76) == 0x608 and u32(80) == 0 and u32(84) == 0           # PM_TMR, GPE0/1
    assert (u8(88), u8(89), u8(90), u8(91), u8(92), u8(93)) == (4, 2, 0, 4, 0, 0)
    assert u16(109) == 0b11                                             # LEGACY_DEVICES | 8042
    flags = u32(112)
    assert flags == (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 10)
    assert not flags & (1 << 20) and not flags & (1 << 8)               # not HW_REDUCED; 24-bit timer
    assert gas(116) == (1, 8, 0, 1, 0xCF9) and u8(128) == 0x06          # RESET_REG, RESET_VALUE
    assert u8(131) == 0                                                 # minor version
    assert gas(148)[:3] == (1, 32, 0) and gas(148)[4] == 0x600          # X_PM1a_EVT_BLK
    assert gas(160) == (0, 0, 0, 0, 0)                                  # X_PM1b_EVT_BLK
    assert gas(172)[:3] == (1, 16, 0) and gas(172)[4] == 0x604          # X_PM1a_CNT_BLK
    assert gas(208)[:3] == (1, 32, 0) and gas(208)[4] == 0x608          # X_PM_TMR_BLK
    assert gas(220) == gas(232) == (0, 0, 0, 0, 0)                      # no GPE blocks
    assert (acpi.PM1A_EVT_BLK, acpi.PM1A_CNT_BLK, acpi.PM_TMR_BLK) == (0x600, 0x604, 0x608)
    assert (acpi.RESET_PORT, acpi.RESET_VALUE, acpi.SCI_IRQ) == (0xCF9, 6, 9)


def test_facs():
    facs = parse_acpi(ACPI_BASE, 1)["facs"]
    sig, length = struct.unpack_from("<4sI", facs)
    assert (sig, length, facs[32]) == (b"FACS", 64, 2)


def test_s5_aml_decodes_to_sleep_type_5():
    dsdt = parse_acpi(ACPI_BASE, 1)["dsdt"]
    assert decode_s5(dsdt[36:]) == [5, 5, 0, 0]
    assert acpi.S5_SLP_TYP == 5
    assert dsdt[36:] == bytes.fromhex("085c5f53355f1208040a050a050000")


@pytest.mark.parametrize("body, encoded", [(0, "01"), (62, "3f"), (63, "4104"), (0xFFD, "4fff"), (0x1000, "830001")])
def test_aml_pkg_length(body, encoded):
    assert acpi.pkg_length(body).hex() == encoded
    value, used = pkg_length(acpi.pkg_length(body), 0)
    assert value == body + used


@pytest.mark.parametrize("vcpus", [1, 2, 64])
def test_madt_entries(vcpus):
    madt = parse_acpi(ACPI_BASE, vcpus)["madt"]
    assert struct.unpack_from("<II", madt, 36) == (0xFEE00000, 1)       # LAPIC address, PCAT_COMPAT
    entries = madt_entries(madt)
    lapics = [struct.unpack("<BBI", body) for kind, body in entries if kind == 0]
    assert lapics == [(i, i, 1) for i in range(vcpus)]                  # UID, APIC ID, enabled
    ioapics = [struct.unpack("<BxII", body) for kind, body in entries if kind == 1]
    assert ioapics == [(vcpus, 0xFEC00000, 0)] and acpi.ioapic_id(vcpus) == vcpus
    overrides = [struct.unpack("<BBIH", body) for kind, body in entries if kind == 2]
    assert overrides == [(0, 9, 9, 0x000D)]                             # only the SCI's
    nmis = [struct.unpack("<BHB", body) for kind, body in entries if kind == 4]
    assert nmis == [(0xFF, 0, 1)]
    assert [kind for kind, _ in entries] == [0] * vcpus + [1, 2, 4]


def test_acpi_sizes():
    assert len(acpi.build(ACPI_BASE, 1)[0]) == 648
    assert len(acpi.build(ACPI_BASE, 64)[0]) == 1152


@pytest.mark.parametrize("base, vcpus", [
    (ACPI_BASE, 0), (ACPI_BASE, 256), (ACPI_BASE + 8, 1), (0xD0000, 1), (0x100000, 1),
    (0xFFFF0, 1),          # no room below 1 MiB
])
def test_acpi_bad_arguments(base, vcpus):
    with pytest.raises(ValueError):
        acpi.build(base, vcpus)


# ---- MP table ----------------------------------------------------------------------

def parse_mp(blob: bytes, base: int) -> dict:
    mem = Mem(base, blob)
    fp = mem.read(base, 16)
    sig, config_addr, length, rev, _, features = struct.unpack("<4sIBBB5s", fp)
    assert sig == b"_MP_" and length == 1 and byte_sum(fp) == 0
    (table_len,) = struct.unpack("<H", mem.read(config_addr + 4, 2))
    config = mem.read(config_addr, table_len)
    (csig, clen, crev, _, oem, product, oem_ptr, oem_size, count, lapic, ext_len, ext_sum) = \
        struct.unpack_from("<4sHBB8s12sIHHIHBx", config)
    assert csig == b"PCMP" and byte_sum(config) == 0
    sizes = {0: 20, 1: 8, 2: 8, 3: 8, 4: 8}
    entries, off = [], 44
    for _ in range(count):
        kind = config[off]
        entries.append((kind, config[off:off + sizes[kind]]))
        off += sizes[kind]
    assert off == clen
    return dict(rev=rev, features=features, config_addr=config_addr, length=clen, crev=crev, oem=oem,
                product=product, oem_ptr=oem_ptr, oem_size=oem_size, lapic=lapic, ext_len=ext_len,
                ext_sum=ext_sum, entries=entries, size=16 + clen)


def find_mp(mem: bytes, start: int) -> int:
    """As Linux's smp_scan_config: "_MP_" on a 16-byte boundary, length 1, checksum 0."""
    for off in range(0, len(mem) - 16 + 1, 16):
        if mem[off:off + 4] == b"_MP_" and mem[off + 8] == 1 and byte_sum(mem[off:off + 16]) == 0:
            return start + off
    raise AssertionError("no MP floating pointer")


@pytest.mark.parametrize("vcpus", [1, 2, 64, 255])
def test_mp_table(vcpus):
    blob = mptable.build(MP_BASE, vcpus)
    mp = parse_mp(blob, MP_BASE)
    assert mp["size"] == len(blob)
    assert mp["rev"] == 4 and mp["features"] == bytes(5) and mp["config_addr"] == MP_BASE + 16
    assert mp["crev"] == 4 and mp["oem"] == b"HVTUI   " and mp["product"] == b"HVTUI PC    "
    assert (mp["oem_ptr"], mp["oem_size"], mp["ext_len"], mp["ext_sum"]) == (0, 0, 0, 0)
    assert mp["lapic"] == 0xFEE00000
    kinds = [k for k, _ in mp["entries"]]
    assert kinds == sorted(kinds)                                   # the order the spec asks
    cpus = [struct.unpack("<BBBBII8x", e)[1:4] for k, e in mp["entries"] if k == 0]
    assert cpus == [(i, 0x14, 3 if i == 0 else 1) for i in range(vcpus)]   # EN, BP on vCPU 0
    assert [e for k, e in mp["entries"] if k == 1] == [b"\x01\x00ISA   "]
    assert [struct.unpack("<BBBBI", e)[1:] for k, e in mp["entries"] if k == 2] == [(vcpus, 0x11, 1, 0xFEC00000)]
    ints = [struct.unpack("<BBHBBBB", e)[1:] for k, e in mp["entries"] if k == 3]
    assert ints == [(0, 0x0D if irq == 9 else 0, 0, irq, vcpus, irq) for irq in range(16) if irq != 2]
    local = [struct.unpack("<BBHBBBB", e)[1:] for k, e in mp["entries"] if k == 4]
    assert local == [(3, 0, 0, 0, 0xFF, 0), (1, 0, 0, 0, 0xFF, 1)]    # ExtINT LINT0, NMI LINT1


def test_mp_found_by_scanning():
    blob = mptable.build(0xF5A30, 4)
    assert find_mp(bios_memory(0xF5A30, blob), BIOS_REGION[0]) == 0xF5A30


def test_mp_sizes():
    assert len(mptable.build(MP_BASE, 1)) == 16 + 44 + 20 + 8 + 8 + 15 * 8 + 2 * 8
    assert len(mptable.build(MP_BASE, 64)) == 16 + 44 + 64 * 20 + 8 + 8 + 15 * 8 + 2 * 8


@pytest.mark.parametrize("base, vcpus", [
    (MP_BASE, 0), (MP_BASE, 256), (MP_BASE + 4, 1), (0x100000, 1), (0xFFF80, 1), (-16, 1),
])
def test_mp_bad_arguments(base, vcpus):
    with pytest.raises(ValueError):
        mptable.build(base, vcpus)
