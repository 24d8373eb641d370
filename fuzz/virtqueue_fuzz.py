"""Fuzz target: the virtio split-queue parser and virtio-blk behind it (atheris, coverage
guided). The input becomes a queue size, a descriptor table, an available ring and
request headers in guest memory; the device must serve the ring or fail it with
NEEDS_RESET - any other exception, or a write outside guest RAM or the disk, is a bug.

CI runs it for a bounded time:  python fuzz/virtqueue_fuzz.py -max_total_time=30
"""
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from hvtui.vmm.devices.virtio import mmio as m
    from hvtui.vmm.devices.virtio.blk import DiskFile, VirtioBlk

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from virtio_driver import AVAIL, DESC, DATA, Driver, guest_memory  # noqa: E402

DISK_SECTORS = 64
_tmp = tempfile.NamedTemporaryFile(prefix="hvtui-fuzz-", suffix=".img")
_tmp.write(bytes(DISK_SECTORS * 512))
_tmp.flush()
DISK = DiskFile(_tmp.name)
MEMORY = guest_memory(2 << 20)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    qsize = 1 << fdp.ConsumeIntInRange(0, 4)
    t = m.VirtioMmio(VirtioBlk(DISK), MEMORY)
    drv = Driver(t, qsize=qsize)
    drv.init()
    MEMORY.write(DESC, fdp.ConsumeBytes(16 * qsize).ljust(16 * qsize, b"\0"))
    MEMORY.write(AVAIL, fdp.ConsumeBytes(4 + 2 * qsize).ljust(4 + 2 * qsize, b"\0"))
    MEMORY.write(DATA, fdp.ConsumeBytes(64).ljust(64, b"\0"))
    try:
        t.notify(0)
    except Exception as e:   # the transport must contain every guest-caused failure
        raise AssertionError(f"exception escaped the device: {e!r}") from e
    assert os.fstat(DISK.fd).st_size == DISK_SECTORS * 512


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
