"""virtio-mmio, split queues, virtio-blk, virtio-console and the ATA disk as state
machines over guest memory (no KVM): the protocol, the data, and every way a guest can
hand the device a bad ring (the device fails, NEEDS_RESET, and touches nothing)."""
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hvtui.vmm.devices import ata
from hvtui.vmm.devices.virtio import mmio as m
from hvtui.vmm.devices.virtio.blk import DiskFile, VirtioBlk
from hvtui.vmm.devices.virtio.console import VirtioConsole
from hvtui.vmm.devices.virtio.queue import DESC_F_NEXT, DESC_F_WRITE

from virtio_driver import AVAIL, DATA, USED, Driver, RAM, guest_memory

SECTORS = 256


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(SECTORS * 512))
    d = DiskFile(str(path))
    yield d
    d.close()


@pytest.fixture
def blk(disk):
    irqs = []
    t = m.VirtioMmio(VirtioBlk(disk), guest_memory(), raise_irq=lambda: irqs.append(1))
    t.irqs = irqs
    return t


def blk_request(drv: Driver, kind: int, sector: int, data_len: int, head: int = 0, payload: bytes = b""):
    hdr, data, status = DATA, DATA + 0x1000, DATA + 0x80000
    drv.mem.write(hdr, struct.pack("<IIQ", kind, 0, sector))
    if payload:
        drv.mem.write(data, payload)
    drv.desc(head, hdr, 16, DESC_F_NEXT, head + 1)
    drv.desc(head + 1, data, data_len, DESC_F_NEXT | (DESC_F_WRITE if kind == 0 else 0), head + 2)
    drv.desc(head + 2, status, 1, DESC_F_WRITE)
    drv.mem.write(status, b"\xff")
    drv.submit(head)
    return data, status


def test_empty_slot_reads_device_id_0():
    t = m.VirtioMmio(None, guest_memory())
    assert t.read(m.R_MAGIC, 4) == m.MAGIC and t.read(m.R_VERSION, 4) == 2
    assert t.read(m.R_DEVICE_ID, 4) == 0


def test_blk_identity_features_and_capacity(blk):
    assert blk.read(m.R_MAGIC, 4) == 0x74726976 and blk.read(m.R_DEVICE_ID, 4) == 2
    blk.write(m.R_DEVICE_FEATURES_SEL, 4, 1)
    assert blk.read(m.R_DEVICE_FEATURES, 4) & 1           # VERSION_1 (bit 32)
    assert struct.unpack("<Q", bytes(blk.read(0x100 + i, 1) for i in range(8)))[0] == SECTORS


def test_blk_write_read_flush_roundtrip(blk, disk):
    drv = Driver(blk)
    assert drv.init() & m.S_DRIVER_OK
    pattern = bytes(range(256)) * 16                      # 4 KiB
    _, status = blk_request(drv, 1, 8, len(pattern), payload=pattern)
    assert drv.used() == [(0, 1)] and drv.mem.read(status, 1) == b"\0"
    assert os.pread(disk.fd, 4096, 8 * 512) == pattern
    data, status = blk_request(drv, 0, 8, 4096)
    assert drv.used() == [(0, 4097)] and drv.mem.read(data, 4096) == pattern
    blk_request(drv, 4, 0, 0)
    assert blk.irqs and blk.read(m.R_INTERRUPT_STATUS, 4) & m.INT_USED


def test_blk_out_of_range_and_readonly_are_ioerr(blk, tmp_path):
    drv = Driver(blk)
    drv.init()
    _, status = blk_request(drv, 0, SECTORS - 1, 1024)    # runs past the end
    assert drv.mem.read(status, 1) == b"\x01"
    ro_path = tmp_path / "ro.img"
    ro_path.write_bytes(bytes(4096))
    ro = m.VirtioMmio(VirtioBlk(DiskFile(str(ro_path), readonly=True)), guest_memory())
    drv = Driver(ro)
    drv.w(m.R_DEVICE_FEATURES_SEL, 0)
    assert drv.r(m.R_DEVICE_FEATURES) & (1 << 5)          # VIRTIO_BLK_F_RO
    drv.init(features=m.F_VERSION_1 | (1 << 5))
    _, status = blk_request(drv, 1, 0, 512, payload=b"x" * 512)
    assert drv.mem.read(status, 1) == b"\x01" and ro_path.read_bytes() == bytes(4096)


def test_bad_feature_negotiation_needs_reset(blk):
    drv = Driver(blk)
    status = drv.init(features=m.F_VERSION_1 | (1 << 40))  # a feature never offered
    assert not status & m.S_FEATURES_OK and status & m.S_NEEDS_RESET
    assert "bad feature negotiation" in blk.failures[0]
    drv.w(m.R_STATUS, 0)                                   # a reset clears it
    assert drv.init() & m.S_DRIVER_OK


@pytest.mark.parametrize("kind", ["loop", "oob", "head", "ahead", "next", "misaligned"])
def test_malformed_ring_fails_device_and_touches_nothing(blk, disk, kind):
    drv = Driver(blk)
    if kind == "misaligned":
        drv.w(m.R_STATUS, 0)
        drv.w(m.R_STATUS, 3)
        drv.w(m.R_DRIVER_FEATURES_SEL, 1)
        drv.w(m.R_DRIVER_FEATURES, 1)
        drv.w(m.R_STATUS, 11)
        drv.w(m.R_QUEUE_DESC_LOW, 0x10008)                  # descriptor tables are 16-byte aligned
        drv.w(m.R_QUEUE_READY, 1)
        assert blk.needs_reset and not blk.queues[0].ready
        return
    drv.init()
    drv.mem.write(DATA, struct.pack("<IIQ", 1, 0, 0))
    if kind == "loop":
        drv.desc(0, DATA, 16, DESC_F_NEXT, 1)
        drv.desc(1, DATA + 512, 512, DESC_F_NEXT, 0)       # back to the head
    elif kind == "oob":
        drv.desc(0, 0x7F00_0000_0000, 16)                   # far outside guest RAM
    elif kind == "next":
        drv.desc(0, DATA, 16, DESC_F_NEXT, 999)
    else:
        drv.desc(0, DATA, 16)
    if kind == "head":
        drv.mem.write(AVAIL + 4, (500).to_bytes(2, "little"))
        drv.mem.write(AVAIL + 2, (1).to_bytes(2, "little"))
    elif kind == "ahead":
        drv.mem.write(AVAIL + 2, (40).to_bytes(2, "little"))   # 40 new entries in a 16-entry queue
    else:
        drv.publish(0)
    before = (drv.mem.read(0, RAM), os.pread(disk.fd, SECTORS * 512, 0))
    blk.notify(0)
    assert blk.needs_reset and blk.read(m.R_STATUS, 4) & m.S_NEEDS_RESET
    assert blk.read(m.R_INTERRUPT_STATUS, 4) & m.INT_CONFIG
    assert (drv.mem.read(0, RAM), os.pread(disk.fd, SECTORS * 512, 0)) == before
    assert drv.used() == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(descs=st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                                st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), min_size=16, max_size=16),
       ring=st.lists(st.integers(0, 0xFFFF), min_size=16, max_size=16),
       avail_idx=st.integers(0, 0xFFFF), qsize=st.sampled_from([1, 2, 4, 8, 16]))
def test_random_rings_never_escape_the_device(disk, descs, ring, avail_idx, qsize):
    """Whatever the ring holds, the device serves it or fails with NEEDS_RESET; no
    exception escapes, and it writes nothing but what the driver let it: in guest RAM,
    only device-writable buffers of the table and the used ring change; every request it
    took is answered, with no more bytes than its writable buffers hold; the disk file
    keeps its size."""
    ram = 1 << 20
    t = m.VirtioMmio(VirtioBlk(disk), guest_memory(ram))
    drv = Driver(t, qsize=qsize)
    drv.init()
    for i, d in enumerate(descs[:qsize]):
        drv.desc(i, *d)
    for i, head in enumerate(ring[:qsize]):
        drv.mem.write(AVAIL + 4 + 2 * i, head.to_bytes(2, "little"))
    drv.mem.write(AVAIL + 2, avail_idx.to_bytes(2, "little"))
    before = drv.mem.read(0, ram)
    t.notify(0)
    after = drv.mem.read(0, ram)
    writable = [(a, a + n) for a, n, flags, _ in descs[:qsize] if flags & DESC_F_WRITE and a + n <= ram]
    writable.append((USED, USED + 6 + 8 * qsize))
    changed = [i for i in range(ram) if before[i] != after[i]] if before != after else []
    assert all(any(lo <= i < hi for lo, hi in writable) for i in changed), "the device wrote where it may not"
    taken = t.queues[0].last_avail
    answered = drv.used()
    assert len(answered) == taken                          # every request it took was answered
    limit = {i: sum(n for a, n, flags, _ in descs[:qsize] if flags & DESC_F_WRITE) for i in range(qsize)}
    for head, written in answered:
        assert head < qsize and written <= limit[head]
    assert t.needs_reset or taken == avail_idx             # it served all of them, or it failed
    assert os.fstat(disk.fd).st_size == SECTORS * 512      # never written past its end


def test_console_transmit_and_receive():
    out = []
    dev = VirtioConsole(on_output=out.append)
    t = m.VirtioMmio(dev, guest_memory())
    drv = Driver(t)
    assert drv.init(queues=2) & m.S_DRIVER_OK
    drv.mem.write(DATA, b"hello hvc0")
    drv.desc(0, DATA, 10, q=1)
    drv.submit(0, q=1)
    assert out == [b"hello hvc0"]
    dev.feed(b"typed")
    drv.desc(0, DATA + 0x100, 64, DESC_F_WRITE, q=0)
    drv.submit(0, q=0)
    assert drv.used(q=0) == [(0, 5)] and drv.mem.read(DATA + 0x100, 5) == b"typed"


class AtaDriver:
    """PIO the way a guest does it: one data-port access per word."""

    def __init__(self, dev):
        self.dev = dev

    def command(self, cmd: int, lba: int = 0, count: int = 1) -> None:
        self.dev.write(6, 1, 0xE0 | ((lba >> 24) & 0xF))
        self.dev.write(2, 1, count & 0xFF)
        for i in range(3):
            self.dev.write(3 + i, 1, (lba >> (8 * i)) & 0xFF)
        self.dev.write(7, 1, cmd)

    def read_sectors(self, lba: int, count: int, width: int = 2) -> bytes:
        self.command(ata.CMD_READ, lba, count)
        out = bytearray()
        for _ in range(count):
            assert self.dev.read(7, 1) & ata.ST_DRQ
            for _ in range(512 // width):
                out += self.dev.read(0, width).to_bytes(width, "little")
        return bytes(out)

    def write_sectors(self, lba: int, data: bytes, width: int = 4) -> None:
        self.command(ata.CMD_WRITE, lba, len(data) // 512)
        for i in range(0, len(data), width):
            self.dev.write(0, width, int.from_bytes(data[i:i + width], "little"))


def test_ata_identify_write_read(disk):
    irqs = []
    dev = ata.AtaDisk(disk, raise_irq=lambda: irqs.append(1))
    drv = AtaDriver(dev)
    drv.command(ata.CMD_IDENTIFY)
    words = [dev.read(0, 2) for _ in range(256)]
    assert words[60] | (words[61] << 16) == SECTORS and words[49] & (1 << 9)
    model = b"".join(w.to_bytes(2, "big") for w in words[27:47])
    assert model.strip() == b"HVTUI EMULATED DISK"
    data = os.urandom(3 * 512)
    drv.write_sectors(10, data, width=4)
    assert os.pread(disk.fd, 3 * 512, 10 * 512) == data
    assert drv.read_sectors(10, 3, width=2) == data and irqs
    drv.command(ata.CMD_READ, SECTORS - 1, 2)              # runs past the end: aborted
    assert dev.read(7, 1) & ata.ST_ERR and dev.read(1, 1) == ata.ERR_IDNF
    dev.write(6, 1, 0xF0)                                  # the slave: nobody there
    assert dev.read(7, 1) == 0
