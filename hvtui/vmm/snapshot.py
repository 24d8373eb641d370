"""The snapshot file (DESIGN §6): write, verify, read. It only composes: each component
saves and restores its own state (Vcpu, Vm, the bus devices: see Machine.save_state).

Layout (format version 2), every offset from the start of the file:

    0          header page (4096 bytes): HEADER, then zeros; its CRC32 covers the whole page
    4096       state section: UTF-8 JSON (config, CPUID fingerprint, vCPUs, VM, devices);
               raw kvm structs and device blobs appear as {"$b64": ...}
    mem_off    memory section (page-aligned): each RAM region at mem_off + its offset, in
               gpa order; only non-zero pages are written, the rest are holes
    map_off    page map (= mem_off + mem_len): for each region MAP_REGION, then its runs of
               written pages as (first page, page count) little-endian u64 pairs
    sums_off   checksum table (= map_off + map_len): the CRC32C of each written page, in
               page-map run order, little-endian u32 (1 MiB for 1 GiB written)

The header holds the SHA-256 of the state section, of the page map and of the checksum
table. open_snapshot verifies all of that (magic, version, exact length, each section no
larger than the format allows, the three digests) and holds the state to a schema
(snapshot_schema.py: types, ranges, sizes, depth) before anything is created from it; its
cost follows the number of written pages (a table of 4 bytes each), not their bytes. The
pages themselves are checked one by one as they are used: a restored machine's RAM is
filled from the file on first touch by a C thread (core/lazyram.c, a userfaultfd), which
reads each page, checks its CRC32C against the table and only then maps it; a page that
fails (or that a truncated file no longer holds) is never mapped, and the machine ends
`crashed` naming its gpa before any vCPU or monitor read sees it. The same thread
prefetches the rest in the background; then the guest no longer needs the file. Where a
userfaultfd cannot be had (a user without access to /dev/userfaultfd), check_pages()
verifies every written page and every hole up front and the file is mapped MAP_PRIVATE,
as version 1 files always are (their single CRC32 is checked at open_snapshot).

A file is written as an unnamed file in the same directory (O_TMPFILE: a process killed
mid-save leaves nothing behind), fsynced, then linked under a temporary name and renamed
over the target, so a crash mid-write leaves the previous file (or none), never a torn
one. A full disk fails the save with one line; the previous file stays as it was.
"""
from __future__ import annotations

import array
import base64
import bisect
import errno
import hashlib
import json
import mmap
import os
import stat
import struct
import time
import zlib
from dataclasses import dataclass, field

from hvtui._core import ffi, lib
from hvtui.errors import KvmError, SnapshotError
from hvtui.vmm import layout, snapshot_schema
from hvtui.vmm.files import SNAPSHOT_MAGIC, file_kind
from hvtui.vmm.snapshot_schema import MAX_STATE_BYTES, SchemaError

MAGIC = SNAPSHOT_MAGIC
VERSION = 2                      # what write() makes; open_snapshot also reads version 1
PAGE = 4096
HEADER = struct.Struct("<8sIIQQQQQQ32s32sQQ32sII")
# magic, version, reserved, state_off, state_len, mem_off, mem_len, map_off, map_len,
# state_sha256, map_sha256, sums_off, sums_len, sums_sha256, reserved,
# header_crc32 (of the header page with this field 0)
HEADER_CRC_AT = HEADER.size - 4
HEADER_V1 = struct.Struct("<8sIIQQQQQQ32s32sII")
# version 1: ... map_sha256, mem_crc32 (zlib CRC32 of the written pages in run order), header_crc32
HEADER_V1_CRC_AT = HEADER_V1.size - 4
MAP_REGION = struct.Struct("<IIQQQ")   # slot, runs, gpa, size, offset in the memory section
STALL_ENV = "HVTUI_TEST_SNAPSHOT_STALL"  # tests: seconds to sleep with the file half written
TMP_MARK = ".hvtui-tmp-"
MAX_MEMORY_BYTES = 128 << 30     # more guest RAM than any machine hvtui builds (layout.MAX_MAPPED_GIB)
MAX_REGIONS = 2                  # RAM below the MMIO hole, and above 4 GiB


@dataclass
class Region:
    slot: int
    gpa: int
    size: int
    offset: int                  # from the start of the memory section
    runs: array.array            # flat (first page, count) pairs of the pages written

    @property
    def data_pages(self) -> int:
        return sum(self.runs[1::2])


@dataclass
class Snapshot:
    """A verified snapshot file, open: restore maps its memory section from fd."""
    path: str
    fd: int
    size: int
    mem_off: int
    state: dict
    regions: list[Region] = field(default_factory=list)
    version: int = VERSION
    sums: array.array | None = None   # version 2: CRC32C of each written page, in run order
    pages_checked: bool = False       # every page verified up front (version 1, or check_pages)

    @property
    def config(self) -> dict:
        return self.state["config"]

    @property
    def data_bytes(self) -> int:
        return sum(r.data_pages for r in self.regions) * PAGE

    def allocated_bytes(self) -> int:
        return os.fstat(self.fd).st_blocks * 512

    def check_host(self, kvm) -> None:
        """Refuse a snapshot whose guest saw another CPU than this host offers."""
        mine, theirs = kvm.cpuid_fingerprint(), self.state.get("cpuid_fingerprint")
        if theirs != mine:
            raise SnapshotError(
                f"{self.path}: snapshot from a different host CPU (CPUID fingerprint "
                f"{str(theirs)[:12]}, this host {mine[:12]}): restore it on the machine that made it")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- JSON with bytes ----
def _encode(obj):
    if isinstance(obj, (bytes, bytearray)):
        return {"$b64": base64.b64encode(obj).decode()}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _decode_hook(d: dict):
    if len(d) == 1 and "$b64" in d:
        return base64.b64decode(d["$b64"], validate=True)
    return d


def _page_up(n: int) -> int:
    return -(-n // PAGE) * PAGE


# ---- write ----
def write(path: str, machine) -> dict:
    """Save a machine that is not running (paused or created) to path, atomically.
    Returns a summary (sizes, timings, the console offset at the snapshot point)."""
    t0 = time.perf_counter()
    path = os.path.abspath(path)
    directory, base = os.path.split(path)
    if not os.path.isdir(directory):
        raise SnapshotError(f"{path}: directory {directory} does not exist")
    _remove_stale_temps(directory, base)
    state = {
        "format": VERSION,
        "created": time.time(),
        "kvm": machine.kvm.kind,
        "cpuid_fingerprint": machine.kvm.cpuid_fingerprint(),
        "config": machine.config_dict(),
        "machine": machine.save_state(),
    }
    state_bytes = json.dumps(_encode(state), separators=(",", ":")).encode()
    if len(state_bytes) > MAX_STATE_BYTES:
        raise SnapshotError(f"{path}: the machine's state is {len(state_bytes)} bytes, more than the "
                            f"format's {MAX_STATE_BYTES}")
    regions = machine.ram_regions()      # (slot, gpa, size, host memoryview, hint runs)
    mem_off = _page_up(PAGE + len(state_bytes))
    mem_len = sum(r[2] for r in regions)
    tmp = os.path.join(directory, f".{base}{TMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")
    fd, named = _create_unnamed(directory, tmp, path)
    try:
        os.pwrite(fd, state_bytes, PAGE)
        os.ftruncate(fd, mem_off + mem_len)
        offset, map_parts, sum_parts, data_pages = 0, [], [], 0
        for slot, gpa, size, host, hint in regions:
            runs = _save_ram(machine, slot, fd, mem_off + offset, hint)
            data_pages += sum(runs[1::2])
            sum_parts.append(page_sums(host, runs))
            map_parts += [MAP_REGION.pack(slot, len(runs) // 2, gpa, size, offset), runs.tobytes()]
            offset += size
        failure = machine.ram_failure()
        if failure:     # a lazily restored page failed while it was read for this save
            raise SnapshotError(f"{path}: {failure}; the snapshot was not saved")
        map_bytes, sums_bytes = b"".join(map_parts), b"".join(sum_parts)
        map_off = mem_off + mem_len
        sums_off = map_off + len(map_bytes)
        os.pwrite(fd, map_bytes + sums_bytes, map_off)
        stall = float(os.environ.get(STALL_ENV, "0") or 0)
        if stall:
            time.sleep(stall)
        header = bytearray(PAGE)
        HEADER.pack_into(header, 0, MAGIC, VERSION, 0, PAGE, len(state_bytes), mem_off, mem_len,
                         map_off, len(map_bytes), hashlib.sha256(state_bytes).digest(),
                         hashlib.sha256(map_bytes).digest(), sums_off, len(sums_bytes),
                         hashlib.sha256(sums_bytes).digest(), 0, 0)
        struct.pack_into("<I", header, HEADER_CRC_AT, zlib.crc32(header))
        os.pwrite(fd, bytes(header), 0)
        os.fsync(fd)
        file_size = os.fstat(fd).st_size
        allocated = os.fstat(fd).st_blocks * 512
        if not named:      # give the unnamed file its temporary name only now it is whole
            _link_fd(fd, tmp)
            named = True
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
        _fsync_dir(directory)
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        if named:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise _write_error(path, directory, e) from None
        raise
    return {"path": path, "file_size": file_size, "allocated_bytes": allocated,
            "data_bytes": data_pages * PAGE, "memory_bytes": mem_len,
            "console_offset": machine.console_offset(), "save_ms": (time.perf_counter() - t0) * 1e3}


def page_sums(host, runs: array.array) -> bytes:
    """The CRC32C of each page of runs over host (a cffi pointer to a RAM slot), in C."""
    n = sum(runs[1::2])
    sums = ffi.new("uint32_t[]", max(1, n))
    if n:
        lib.hv_crc32c_pages(ffi.cast("uint8_t *", host), ffi.from_buffer("uint64_t[]", runs), len(runs) // 2, sums)
    return bytes(ffi.buffer(sums, 4 * n))


def _create_unnamed(directory: str, tmp: str, path: str) -> tuple[int, bool]:
    """(fd, named): an unnamed file in directory (O_TMPFILE), which vanishes by itself if
    this process dies before it is linked; where the filesystem cannot, a file at tmp."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666), False
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            raise SnapshotError(f"{path}: cannot create the snapshot file: {e.strerror}") from None
    try:
        return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), True
    except OSError as e:
        raise SnapshotError(f"{path}: cannot create the snapshot file: {e.strerror}") from None


def _link_fd(fd: int, name: str) -> None:
    """Give an O_TMPFILE file a name (linkat through /proc with AT_SYMLINK_FOLLOW)."""
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=root, follow_symlinks=True)
    finally:
        os.close(root)


def _write_error(path: str, directory: str, e: OSError) -> SnapshotError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return SnapshotError(f"{path}: {what} (in {directory}); the snapshot was not saved"
                             + (" and the previous file is intact" if os.path.exists(path) else ""))
    return SnapshotError(f"{path}: writing the snapshot failed: {e.strerror or e}")


def _save_ram(machine, slot: int, fd: int, file_off: int, hint) -> array.array:
    """The runs of non-zero pages of one slot, written to fd at file_off (C: no Python per page).
    The C core says -E2BIG when runs[] is too small: it grows, up to the most runs a slot can
    have (every other page). Any other failure is the file's (ENOSPC: a full disk), an OSError."""
    hint_c = ffi.new("uint64_t[]", list(hint)) if hint else ffi.NULL
    most = machine.memory.regions[slot].size // PAGE // 2 + 1
    room = min(1024, most)
    while True:
        runs = ffi.new("uint64_t[]", 2 * room)
        pages = ffi.new("uint64_t *")
        n = lib.hv_vm_save_ram(machine.vm.ptr, slot, fd, file_off, hint_c, len(hint) // 2 if hint else 0,
                               runs, room, pages)
        if n == -errno.E2BIG and room < most:
            room = min(room * 16, most)
            continue
        if n == -errno.E2BIG:
            raise KvmError(ffi.string(lib.hv_last_op()).decode(), -n, f"RAM slot {slot}: {room} runs")
        if n < 0:
            raise OSError(-n, f"{os.strerror(-n)} ({ffi.string(lib.hv_last_op()).decode()})")
        return array.array("Q", bytes(ffi.buffer(runs, 16 * n)))


def _fsync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _remove_stale_temps(directory: str, base: str) -> None:
    """Temporary files of saves whose process died (SIGKILL mid-write) are litter: remove them."""
    prefix = f".{base}{TMP_MARK}"
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


# ---- read and verify ----
def open_snapshot(path: str, kvm=None) -> Snapshot:
    """Open and verify a snapshot (and, given kvm, that this host's CPU matches). Nothing
    is created and the file is opened read-only. Raises SnapshotError naming what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise SnapshotError(f"{path}: cannot open the snapshot: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SnapshotError(f"{path}: is {file_kind(mode) or 'not a regular file'}, not a snapshot file")
        snap = _verify(path, fd)
        if kvm is not None:
            snap.check_host(kvm)
        return snap
    except BaseException:
        os.close(fd)
        raise


def verify(path: str, kvm=None, pages: bool = False) -> dict:
    """Verify a snapshot (with pages, every memory page and hole too, as `hvtui snapshot
    info` does) and return what it holds."""
    with open_snapshot(path, kvm) as snap:
        if pages:
            check_pages(snap)
        return describe(snap)


def describe(snap: Snapshot) -> dict:
    cfg, m = snap.config, snap.state["machine"]
    return {
        "path": snap.path, "format": snap.state["format"], "created": snap.state["created"],
        "kvm": snap.state["kvm"], "cpuid_fingerprint": snap.state["cpuid_fingerprint"],
        "name": cfg["name"], "image": cfg["image"], "memory_mib": cfg["memory_mib"],
        "vcpus": cfg["vcpus"], "cmdline": cfg.get("cmdline", ""), "initrd": cfg.get("initrd", []),
        "disk": cfg.get("disk"), "disk_readonly": bool(cfg.get("disk_readonly")),
        "rip": [_rip(v["regs"]) for v in m["vcpus"]],
        "devices": sorted(m["devices"]) + ["uart", "i8042"],
        "file_size": snap.size, "allocated_bytes": snap.allocated_bytes(), "data_bytes": snap.data_bytes,
        "regions": [{"slot": r.slot, "gpa": r.gpa, "size": r.size, "data_pages": r.data_pages}
                    for r in snap.regions],
    }


def _rip(regs: bytes) -> int:
    return struct.unpack_from("<Q", regs, 16 * 8)[0] if len(regs) >= 17 * 8 else 0


def _bad(path: str, what: str) -> SnapshotError:
    return SnapshotError(f"{path}: not a usable snapshot: {what}")


def _pread(fd: int, length: int, offset: int) -> bytes:
    parts, got = [], 0
    while got < length:
        chunk = os.pread(fd, min(length - got, 1 << 24), offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _verify(path: str, fd: int) -> Snapshot:
    size = os.fstat(fd).st_size
    page = _pread(fd, PAGE, 0)
    if len(page) < HEADER_V1.size or page[:len(MAGIC)] != MAGIC:
        raise _bad(path, "wrong magic (this is not an hvtui snapshot)")
    version = struct.unpack_from("<I", page, len(MAGIC))[0]
    if version not in (1, VERSION):
        raise _bad(path, f"format version {version}; this hvtui reads versions 1 and {VERSION}")
    if len(page) < PAGE:
        raise _bad(path, f"truncated ({size} bytes, shorter than its header)")
    if version == 1:
        (_magic, _version, _reserved, state_off, state_len, mem_off, mem_len, map_off, map_len,
         state_sum, map_sum, mem_crc, header_crc) = HEADER_V1.unpack_from(page, 0)
        crc_at, sums_off, sums_len, sums_sum = HEADER_V1_CRC_AT, map_off + map_len, 0, None
    else:
        (_magic, _version, _reserved, state_off, state_len, mem_off, mem_len, map_off, map_len,
         state_sum, map_sum, sums_off, sums_len, sums_sum, _reserved2, header_crc) = HEADER.unpack_from(page, 0)
        crc_at, mem_crc = HEADER_CRC_AT, None
    blank = bytearray(page)
    struct.pack_into("<I", blank, crc_at, 0)
    if zlib.crc32(blank) != header_crc:
        raise _bad(path, "header checksum mismatch (the header is corrupt)")
    if (state_off != PAGE or mem_off % PAGE or mem_off < state_off + state_len
            or map_off != mem_off + mem_len or mem_len % PAGE or sums_off != map_off + map_len
            or sums_len % 4):
        raise _bad(path, "section offsets are inconsistent")
    # nothing is read that the format does not allow (a header may claim gigabytes)
    if not 0 < state_len <= MAX_STATE_BYTES:
        raise _bad(path, f"state section of {state_len} bytes (the format allows 1..{MAX_STATE_BYTES})")
    if mem_len > MAX_MEMORY_BYTES or mem_off != _page_up(state_off + state_len):
        raise _bad(path, "memory section misplaced or larger than any guest")
    if map_len > _max_map_len(mem_len):
        raise _bad(path, f"page map of {map_len} bytes, more than {mem_len >> 20} MiB of memory can need")
    if sums_len > 4 * (mem_len // PAGE):
        raise _bad(path, f"checksum table of {sums_len} bytes, more than {mem_len >> 20} MiB of memory can need")
    end = sums_off + sums_len
    if size != end:
        what = "truncated" if size < end else "longer than its sections"
        raise _bad(path, f"{what} ({size} bytes, the header says {end})")
    state_bytes = _pread(fd, state_len, state_off)
    if hashlib.sha256(state_bytes).digest() != state_sum:
        raise _bad(path, "state section checksum mismatch (vCPU/device state is corrupt)")
    map_bytes = _pread(fd, map_len, map_off)
    if hashlib.sha256(map_bytes).digest() != map_sum:
        raise _bad(path, "page map checksum mismatch")
    sums = None
    if version >= 2:
        sums_bytes = _pread(fd, sums_len, sums_off)
        if hashlib.sha256(sums_bytes).digest() != sums_sum:
            raise _bad(path, "checksum table mismatch (its SHA-256 differs from the header's)")
        sums = array.array("I", sums_bytes)
    try:
        state = json.loads(state_bytes, object_hook=_decode_hook, parse_constant=_no_constant)
    except RecursionError:
        raise _bad(path, "the state section is nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise _bad(path, f"the state section is not valid JSON ({str(e)[:120]})") from None
    try:
        snapshot_schema.check_state(state, version)
    except SchemaError as e:
        raise _bad(path, str(e)[:200]) from None
    try:
        regions = _parse_map(map_bytes, mem_len)
        _check_state(state, regions, version)
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise _bad(path, f"malformed contents ({e})") from None
    if sums is not None and len(sums) != sum(r.data_pages for r in regions):
        raise _bad(path, f"checksum table holds {len(sums)} pages, the page map {sum(r.data_pages for r in regions)}")
    snap = Snapshot(path=path, fd=fd, size=size, mem_off=mem_off, state=state, regions=regions,
                    version=version, sums=sums)
    if version == 1 and mem_len:
        _check_memory(snap, mem_crc)
    snap.pages_checked = version == 1
    return snap


def check_pages(snap: Snapshot) -> None:
    """Verify a version-2 snapshot's memory up front: every written page against its
    CRC32C (in C), and every byte outside them zero (they are mapped from the file, not
    served as zero pages, on this path). For a restore without a userfaultfd, and for
    `hvtui snapshot info`. Raises SnapshotError naming the first bad page's gpa."""
    if snap.pages_checked or not snap.regions:
        return
    mm = mmap.mmap(snap.fd, snap.size, prot=mmap.PROT_READ)
    buf = ffi.from_buffer(mm)
    try:
        base = ffi.cast("uint8_t *", buf)
        at, bad = 0, ffi.new("uint64_t *")
        for r in snap.regions:
            n = r.data_pages
            if n and lib.hv_crc32c_check_pages(base + snap.mem_off + r.offset, ffi.from_buffer("uint64_t[]", r.runs),
                                               len(r.runs) // 2, ffi.from_buffer("uint32_t[]", snap.sums[at:at + n]),
                                               bad):
                raise _bad(snap.path, f"memory page at gpa {r.gpa + bad[0] * PAGE:#x} fails its checksum "
                                      "(guest memory is corrupt)")
            at += n
        with memoryview(mm) as view:
            _check_holes(snap, view)
    finally:
        ffi.release(buf)     # the mapping's exports go before it closes, on an error too
        mm.close()
    snap.pages_checked = True


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a snapshot holds")


def _max_map_len(mem_len: int) -> int:
    """The largest page map mem_len bytes of RAM can have: every region's record, and at
    most one run for every other page."""
    pages = mem_len // PAGE
    return MAX_REGIONS * MAP_REGION.size + 16 * (pages // 2 + MAX_REGIONS)


def _parse_map(map_bytes: bytes, mem_len: int) -> list[Region]:
    regions, at, expect_offset = [], 0, 0
    while at < len(map_bytes):
        slot, n, gpa, size, offset = MAP_REGION.unpack_from(map_bytes, at)
        at += MAP_REGION.size
        if at + 16 * n > len(map_bytes):
            raise ValueError("page map shorter than its runs")
        runs = array.array("Q", map_bytes[at:at + 16 * n])
        at += 16 * n
        if offset != expect_offset or size % PAGE or gpa % PAGE or not size:
            raise ValueError(f"region at {gpa:#x} misplaced")
        end = 0
        for first, count in zip(runs[0::2], runs[1::2]):
            if first < end or not count or first + count > size // PAGE:
                raise ValueError(f"region at {gpa:#x}: runs out of order or out of range")
            end = first + count
        regions.append(Region(slot, gpa, size, offset, runs))
        expect_offset += size
        if len(regions) > MAX_REGIONS or slot >= MAX_REGIONS:
            raise ValueError(f"more than {MAX_REGIONS} RAM regions, or slot {slot}")
    if expect_offset != mem_len:
        raise ValueError("the page map does not cover the memory section")
    return regions


def _check_state(state: dict, regions: list[Region], version: int) -> None:
    cfg, m = state["config"], state["machine"]
    if state["format"] != version:
        raise ValueError("state format differs from the header's")
    if sum(r.size for r in regions) != int(cfg["memory_mib"]) << 20:
        raise ValueError("memory regions do not add up to the configured RAM")
    if len(m["vcpus"]) != int(cfg["vcpus"]) or not m["vcpus"]:
        raise ValueError("vCPU count differs from the configuration")
    low, high = layout.split_ram(int(cfg["memory_mib"]) << 20)
    want = [(0, 0, low)] + ([(1, layout.HIGH_RAM_START, high)] if high else [])
    if [(r.slot, r.gpa, r.size) for r in regions] != want:
        raise ValueError("memory regions are not where this RAM size puts them")


def _check_memory(snap: Snapshot, want: int) -> None:
    """Version 1: the CRC32 of the written pages, and every byte outside them zero."""
    mm = mmap.mmap(snap.fd, snap.size, prot=mmap.PROT_READ)
    view = memoryview(mm)
    try:
        crc = 0
        for r in snap.regions:
            base = snap.mem_off + r.offset
            for first, count in zip(r.runs[0::2], r.runs[1::2]):
                crc = zlib.crc32(view[base + first * PAGE:base + (first + count) * PAGE], crc)
        if crc != want:
            raise _bad(snap.path, "memory checksum mismatch (guest memory is corrupt)")
        _check_holes(snap, view)
    finally:
        view.release()
        mm.close()


def _check_holes(snap: Snapshot, view: memoryview) -> None:
    """Every byte of the memory section outside the written pages must be zero (a hole)."""
    data = [(snap.mem_off + r.offset + first * PAGE, snap.mem_off + r.offset + (first + count) * PAGE)
            for r in snap.regions for first, count in zip(r.runs[0::2], r.runs[1::2])]
    mem_len = sum(r.size for r in snap.regions)
    for a, b in _allocated_extents(snap.fd, snap.mem_off, snap.mem_off + mem_len):
        for lo, hi in _subtract(a, b, data):
            for at in range(lo, hi, 1 << 20):
                end = min(hi, at + (1 << 20))
                if view[at:end] != bytes(end - at):
                    raise _bad(snap.path, f"memory section has data in a zero page at file offset {at:#x}")


def _allocated_extents(fd: int, start: int, end: int):
    """[a, b) ranges of the file that hold data (SEEK_DATA/SEEK_HOLE; all of it if unsupported)."""
    pos = start
    while pos < end:
        try:
            a = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            yield pos, end
            return
        if a >= end:
            return
        b = min(os.lseek(fd, a, os.SEEK_HOLE), end)
        yield a, b
        pos = b


def _subtract(a: int, b: int, data: list[tuple[int, int]]):
    """Parts of [a, b) outside the sorted ranges in data."""
    i = max(0, bisect.bisect_right(data, (a, a)) - 1)
    pos = a
    while pos < b and i < len(data):
        lo, hi = data[i]
        if hi <= pos:
            i += 1
            continue
        if lo >= b:
            break
        if lo > pos:
            yield pos, lo
        pos = max(pos, hi)
        i += 1
    if pos < b:
        yield pos, b
