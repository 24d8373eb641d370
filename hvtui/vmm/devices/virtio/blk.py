"""virtio-blk (virtio 1.1 §5.2) over a host file: read, write, flush, get-id; read-only
option; capacity from the file. Data moves between the file and guest RAM with
preadv/pwritev straight into bounds-checked views of guest memory (no copies)."""
from __future__ import annotations

import os
import struct

from hvtui.vmm.devices.virtio.queue import Chain, VirtqueueError

SECTOR = 512
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
F_RO, F_BLK_SIZE, F_FLUSH = 1 << 5, 1 << 6, 1 << 9
HEADER = struct.Struct("<IIQ")
ID_BYTES = 20


class DiskFile:
    """The host file behind a disk, shared by virtio-blk and the emulated ATA disk."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size // SECTOR * SECTOR

    @property
    def sectors(self) -> int:
        return self.size // SECTOR

    def in_range(self, offset: int, length: int) -> bool:
        return 0 <= offset and offset + length <= self.size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class VirtioBlk:
    device_id = 2
    num_queues = 1

    def __init__(self, disk: DiskFile, serial: str = "hvtui-disk"):
        self.disk = disk
        self.serial = serial.encode()[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self.features = F_FLUSH | F_BLK_SIZE | (F_RO if disk.readonly else 0)
        self.config = struct.pack("<QIIIHBBI", disk.sectors, 0, 0, SECTOR, 0, 0, 0, 0)[:24]
        self.requests = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def process(self, index: int, queue, memory) -> bool:
        used = False
        while (chain := queue.pop(memory)) is not None:
            written = self._serve(chain, memory)
            queue.push_used(memory, chain.head, written)
            used = True
        return used

    def _serve(self, chain: Chain, memory) -> int:
        readable, writable = chain.readable, chain.writable
        if not readable or readable[0].length < HEADER.size or not writable or writable[-1].length < 1:
            raise VirtqueueError("virtio-blk request without a 16-byte header or a status byte")
        kind, _, sector = HEADER.unpack(memory.read(readable[0].addr, HEADER.size))
        status_buf = writable[-1]
        status_addr = status_buf.addr + status_buf.length - 1
        # data: what follows the header in readable buffers (OUT), or the writable ones but the status byte (IN)
        out_views = self._views(memory, readable, skip=HEADER.size)
        in_views = self._views(memory, writable, drop_last=1)
        self.requests += 1
        status, written = S_OK, 0
        offset = sector * SECTOR
        if kind == T_IN:
            length = sum(len(v) for v in in_views)
            if not self.disk.in_range(offset, length):
                status = S_IOERR
            else:
                n = os.preadv(self.disk.fd, in_views, offset) if in_views else 0
                status, written = (S_OK, n) if n == length else (S_IOERR, n)
                self.bytes_read += n
        elif kind == T_OUT:
            length = sum(len(v) for v in out_views)
            if self.disk.readonly or not self.disk.in_range(offset, length):
                status = S_IOERR
            else:
                n = os.pwritev(self.disk.fd, out_views, offset) if out_views else 0
                status = S_OK if n == length else S_IOERR
                self.bytes_written += n
        elif kind == T_FLUSH:
            if not self.disk.readonly:
                os.fdatasync(self.disk.fd)
        elif kind == T_GET_ID:
            n = 0
            for v in in_views:
                chunk = self.serial[n:n + len(v)]
                v[:len(chunk)] = chunk
                n += len(chunk)
            written = n
        else:
            status = S_UNSUPP
        memory.write(status_addr, bytes([status]))
        return written + 1

    @staticmethod
    def _views(memory, buffers, skip: int = 0, drop_last: int = 0) -> list:
        views = []
        for i, b in enumerate(buffers):
            start = skip if i == 0 else 0
            end = b.length - (drop_last if i == len(buffers) - 1 else 0)
            if end > start:
                views.append(memory.view(b.addr + start, end - start))
        return views

    def save(self) -> dict:
        return {"sectors": self.disk.sectors, "readonly": self.disk.readonly}

    def restore(self, state: dict) -> None:
        from hvtui.errors import SnapshotError
        from hvtui.vmm.devices import saved
        saved.fields(state, ("sectors", "readonly"), "virtio-blk")
        saved.boolean(state, "readonly", "virtio-blk")
        if saved.integer(state, "sectors", 0, 1 << 63, "virtio-blk") != self.disk.sectors:
            raise SnapshotError(f"disk {self.disk.path} has {self.disk.sectors} sectors; the snapshot's disk "
                                f"had {state['sectors']}: give it the same disk (--disk)")
