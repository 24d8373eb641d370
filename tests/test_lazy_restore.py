"""Lazy restore (issue 13): a restored guest's RAM is read from the snapshot file page by
page on first touch, each page checked against its CRC32C before anything sees it, the
rest prefetched in the background (core/lazyram.c, vmm/lazyram.py). A page that fails
its checksum, or that a truncated file no longer holds, ends the guest `crashed` naming
the gpa, and its bytes never reach the guest (its console) nor the monitor's reads; the
monitor and every other guest go on."""
from __future__ import annotations

import array
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from hvtui import images
from hvtui.errors import SnapshotError
from hvtui.vmm import lazyram, snapshot
from hvtui.vmm.machine import Machine, MachineConfig, State

pytestmark = pytest.mark.kvm
MiB = 1 << 20
PAGE = snapshot.PAGE
DATA_AT = 8 * MiB              # free low RAM of the counter guest (its image and stacks sit lower)
DATA_MIB = 2


def _wait_output(m: Machine, needle: bytes, timeout: float = 20) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while needle not in out:
        assert time.monotonic() < deadline, f"{m.name}: no {needle!r} in {out[-200:]!r} ({m.state.value})"
        assert m.state.live, f"{m.name} ended: {m.stop_reason}"
        time.sleep(0.01)
        out += m.read_console()
    return out


def _wait_end(m: Machine, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while m.state.live:
        assert time.monotonic() < deadline, f"{m.name} still {m.state.value}"
        time.sleep(0.01)


def _pattern(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (PAGE // 32)


@pytest.fixture(scope="module")
def counter_snapshot(tmp_path_factory):
    """A paused 64 MiB counter that printed, with DATA_MIB MiB of data it never reads at
    DATA_AT, saved. Returns (path, the data's bytes)."""
    path = tmp_path_factory.mktemp("lazy") / "counter.snap"
    m = Machine(MachineConfig(name="lazy", image=images.resolve("counter"), memory_mib=64, watchdog_s=0))
    try:
        m.start()
        _wait_output(m, b"count 2\r\n")
        m.pause()
        data = b"".join(_pattern(i) for i in range(DATA_MIB * MiB // PAGE))
        m.memory.write(DATA_AT, data)
        m.snapshot(str(path))
    finally:
        m.stop()
        m.destroy()
    return path, data


def _file_offset(snap, gpa: int) -> int:
    r = next(r for r in snap.regions if r.gpa <= gpa < r.gpa + r.size)
    return snap.mem_off + r.offset + gpa - r.gpa


def _written_page_holding(path, needle: bytes) -> int:
    """The gpa of the written page holding needle."""
    with snapshot.open_snapshot(str(path)) as snap:
        for r in snap.regions:
            for first, count in zip(r.runs[0::2], r.runs[1::2]):
                at = snap.mem_off + r.offset + first * PAGE
                chunk = os.pread(snap.fd, count * PAGE, at)
                i = chunk.find(needle)
                if i >= 0:
                    return r.gpa + first * PAGE + (i // PAGE) * PAGE
    raise AssertionError(f"{needle!r} is in no written page")


def _poke(path, gpa: int, old: bytes, new: bytes) -> None:
    """Overwrite bytes of one page in the file, its checksum left as it was."""
    with snapshot.open_snapshot(str(path)) as snap:
        off = _file_offset(snap, gpa)
    with open(path, "r+b") as f:
        page = bytearray(os.pread(f.fileno(), PAGE, off))
        assert old in page
        os.pwrite(f.fileno(), bytes(page.replace(old, new)), off)


def _restore(path, name="restored", **kw) -> Machine:
    with snapshot.open_snapshot(str(path)) as snap:
        return Machine.from_snapshot(snap, name, **kw)


def _copy(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    return dst


def test_lazy_restore_is_used_here():
    """These tests are about the lazy path: as root (here and in CI) it must be there."""
    assert lazyram.available(), "no userfaultfd: run the tests as root (or with access to /dev/userfaultfd)"


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_corrupt_page_the_guest_reads_at_once_never_reaches_it(counter_snapshot, tmp_path, monkeypatch, prefetch):
    """The page holding the counter's format string says "COUNT" in the file: whether the
    guest's first read or the prefetch finds it, the guest ends crashed naming the page,
    and its console never shows "COUNT"."""
    path = _copy(counter_snapshot[0], tmp_path / "bad.snap")
    gpa = _written_page_holding(path, b"count %llu")
    _poke(path, gpa, b"count %llu", b"COUNT %llu")
    if not prefetch:
        monkeypatch.setenv(lazyram.NO_PREFETCH_ENV, "1")
    m = _restore(path)
    try:
        assert m.lazy is not None
        if m.state == State.CREATED:       # the prefetch may have found it already
            m.start()
        _wait_end(m)
        out = m.read_console()
        assert m.state == State.CRASHED
        assert f"snapshot page at gpa {gpa:#x} fails its checksum" in m.stop_reason, m.stop_reason
        assert "stopped before reading it" in m.stop_reason
        assert b"COUNT" not in out and b"count" not in out, out
        # the monitor's own reads of the page see zeros, never the bad bytes, and do not hang
        assert m.memory.read(gpa, PAGE) == bytes(PAGE)
        assert not m.lazy.stats()["vcpus_stuck"]
    finally:
        m.destroy()


def test_a_corrupt_page_the_guest_never_touches_is_found_by_the_prefetch(counter_snapshot, tmp_path):
    path, data = counter_snapshot
    path = _copy(path, tmp_path / "bad.snap")
    gpa = DATA_AT + MiB + 5 * PAGE
    _poke(path, gpa, _pattern(MiB // PAGE + 5)[:32], b"\xff" * 32)
    m = _restore(path)
    try:
        if m.state == State.CREATED:
            m.start()
        _wait_end(m)
        assert m.state == State.CRASHED
        assert f"snapshot page at gpa {gpa:#x} fails its checksum" in m.stop_reason, m.stop_reason
        st = m.lazy.stats()
        assert st["state"] == "failed" and st["bad_gpa"] == gpa
        assert m.memory.read(gpa, PAGE) == bytes(PAGE)
        assert m.memory.read(gpa - PAGE, PAGE) == data[MiB + 4 * PAGE:MiB + 5 * PAGE]   # its neighbour is fine
    finally:
        m.destroy()


def test_a_file_truncated_after_restore(counter_snapshot, tmp_path, monkeypatch):
    """The file loses its memory after the restore (prefetch off, so the guest still needs
    it): the guest ends crashed naming a page missing from the file; a guest beside it and
    the monitor's reads go on."""
    path = _copy(counter_snapshot[0], tmp_path / "trunc.snap")
    monkeypatch.setenv(lazyram.NO_PREFETCH_ENV, "1")
    bystander = Machine(MachineConfig(name="bystander", image=images.resolve("counter"), memory_mib=16))
    m = _restore(path)
    try:
        bystander.start()
        with snapshot.open_snapshot(str(path)) as snap:
            os.truncate(path, snap.mem_off)
        m.start()
        _wait_end(m)
        assert m.state == State.CRASHED
        assert re.search(r"snapshot page at gpa 0x[0-9a-f]+ is missing from the file", m.stop_reason), m.stop_reason
        assert b"count" not in m.read_console()
        assert m.memory.read(DATA_AT, PAGE) == bytes(PAGE)     # not in the file any more: zeros, no hang
        _wait_output(bystander, b"count 3\r\n")
        assert bystander.state == State.RUNNING
    finally:
        m.destroy()
        bystander.stop()
        bystander.destroy()


def test_snapshot_of_a_restored_guest_round_trips(counter_snapshot, tmp_path, monkeypatch):
    """Prefetch off: the monitor's reads and the save itself fetch (and check) the pages;
    holes are not paged in; the new snapshot restores and counts on."""
    path, data = counter_snapshot
    monkeypatch.setenv(lazyram.NO_PREFETCH_ENV, "1")
    m = _restore(path, "first")
    try:
        assert m.memory.read(DATA_AT + 3 * PAGE, PAGE) == data[3 * PAGE:4 * PAGE]   # a host read, served
        m.start()
        _wait_output(m, b"count 4\r\n")
        m.pause()
        second = tmp_path / "second.snap"
        m.snapshot(str(second))
        st = m.lazy.stats()
        assert st["state"] == "running" and st["prefetched"] == 0
        assert st["fetched_by_fault"] == st["pages_total"]          # the save read every written page
        assert m.vm.resident_bytes() < 16 * MiB, m.vm.resident_bytes()   # ... and no hole
    finally:
        m.stop()
        m.destroy()
    monkeypatch.delenv(lazyram.NO_PREFETCH_ENV)
    r = _restore(second, "second")
    try:
        assert r.memory.read(DATA_AT, len(data)) == data
        r.start()
        out = _wait_output(r, b"count 6\r\n")
        assert b"count 5\r\n" in out and b"count 3\r\n" not in out
        deadline = time.monotonic() + 10
        while r.lazy.stats()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        r.stop()
        r.destroy()


def test_destroy_mid_prefetch(tmp_path):
    """A guest with 192 MiB written is destroyed while its prefetch is still running (and
    again while faults wait, prefetch off): nothing hangs, the next restore works."""
    m = Machine(MachineConfig(name="big", image=images.resolve("counter"), memory_mib=256, watchdog_s=0))
    path = tmp_path / "big.snap"
    try:
        m.start()
        _wait_output(m, b"count 1\r\n")
        m.pause()
        chunk = b"".join(_pattern(i) for i in range(256))
        for off in range(32 * MiB, 224 * MiB, MiB):
            m.memory.write(off, chunk)
        m.snapshot(str(path))
    finally:
        m.stop()
        m.destroy()
    states = []
    for _ in range(3):
        r = _restore(path, "big")
        r.start()
        states.append(r.lazy.stats()["state"])
        t0 = time.monotonic()
        r.stop()
        r.destroy()
        assert time.monotonic() - t0 < 5
    assert "running" in states, states
    r = _restore(path, "big")
    try:
        assert r.memory.read(100 * MiB, MiB) == chunk
    finally:
        r.destroy()
    for t in threading.enumerate():     # each destroyed machine's watcher has ended
        if t.name == "hvtui-lazy-ram":
            t.join(5)
    assert not [t for t in threading.enumerate() if t.name == "hvtui-lazy-ram"]


def _restores_eagerly_and_runs(path, data) -> None:
    """Restored without a lazy RAM (every page checked at open), the guest's data is
    there and the counter goes on."""
    m = _restore(path)
    try:
        assert m.lazy is None
        assert m.memory.read(DATA_AT, len(data)) == data
        m.start()
        _wait_output(m, b"count 4\r\n")
    finally:
        m.stop()
        m.destroy()


def test_without_a_userfaultfd_every_page_is_checked_up_front(counter_snapshot, tmp_path, monkeypatch):
    """As a user without access to a userfaultfd: the eager path (every page and hole
    verified, then the file mapped copy-on-write). A good file runs; a bad page is refused
    before anything is built."""
    monkeypatch.setenv(lazyram.FORCE_EAGER_ENV, "1")
    path, data = counter_snapshot
    _restores_eagerly_and_runs(path, data)
    bad = _copy(path, tmp_path / "bad.snap")
    gpa = _written_page_holding(bad, b"count %llu")
    _poke(bad, gpa, b"count %llu", b"COUNT %llu")
    with pytest.raises(SnapshotError, match=f"memory page at gpa {gpa:#x} fails its checksum"):
        _restore(bad)


def _hvtui_run(snap, log_dir, without_userfaultfd: bool) -> subprocess.CompletedProcess:
    """`hvtui run SNAPSHOT --timeout 2` as root, or as a process with no way to a
    userfaultfd: no CAP_SYS_PTRACE (the kernel's condition for a userfaultfd that serves
    KVM's faults while vm.unprivileged_userfaultfd is 0) and /dev/userfaultfd hidden under
    /dev/null in a private mount namespace: what an ordinary user has."""
    cmd = [sys.executable, "-m", "hvtui", "run", str(snap), "--timeout", "2", "--log-dir", str(log_dir)]
    if without_userfaultfd:
        cmd = ["unshare", "--mount", "sh", "-c", 'mount --bind /dev/null /dev/userfaultfd && exec "$@"', "sh",
               "setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace", "--", *cmd]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


def test_hvtui_run_without_userfaultfd_access(counter_snapshot, tmp_path):
    """A user who cannot have a userfaultfd restores through the eager path: a good file
    runs on where it stopped; a corrupt one is refused before the guest exists (one line,
    exit 1), where with a userfaultfd the same file starts and ends `crashed` (exit 3)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("util-linux's unshare and setpriv are needed to take the userfaultfd away")
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --bind /dev/null /dev/userfaultfd"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot hide /dev/userfaultfd in a mount namespace: {probe.stderr.decode().strip()}")
    path, _ = counter_snapshot
    r = _hvtui_run(path, tmp_path, without_userfaultfd=True)
    counts = [int(n) for n in re.findall(rb"count (\d+)", r.stdout)]
    assert r.returncode == 124 and counts and counts[0] == 3, (r.returncode, r.stdout[-300:], r.stderr)

    bad = _copy(path, tmp_path / "bad.snap")
    gpa = _written_page_holding(bad, b"count %llu")
    _poke(bad, gpa, b"count %llu", b"COUNT %llu")
    eager = _hvtui_run(bad, tmp_path, without_userfaultfd=True)
    assert eager.returncode == 1 and eager.stdout == b"", (eager.returncode, eager.stdout[-300:])
    assert f"memory page at gpa {gpa:#x} fails its checksum".encode() in eager.stderr, eager.stderr
    assert len(eager.stderr.strip().splitlines()) == 1, eager.stderr
    lazy = _hvtui_run(bad, tmp_path, without_userfaultfd=False)
    assert lazy.returncode == 3 and b"COUNT" not in lazy.stdout, (lazy.returncode, lazy.stdout[-300:])
    assert f"crashed: corrupt snapshot page: snapshot page at gpa {gpa:#x} fails its checksum".encode() in lazy.stderr


def _as_version_1(src, dst) -> None:
    """The same snapshot in format version 1: its header, one CRC32 over the written pages,
    no checksum table."""
    data = open(src, "rb").read()
    (magic, _, _, state_off, state_len, mem_off, mem_len, map_off, map_len, state_sum, map_sum,
     sums_off, _, _, _, _) = snapshot.HEADER.unpack_from(data)
    crc = 0
    with snapshot.open_snapshot(str(src)) as snap:
        for r in snap.regions:
            for first, count in zip(r.runs[0::2], r.runs[1::2]):
                at = mem_off + r.offset + first * PAGE
                crc = zlib.crc32(data[at:at + count * PAGE], crc)
    state = bytearray(data[state_off:state_off + state_len])
    state = bytes(state).replace(b'"format":2', b'"format":1')
    assert len(state) == state_len
    header = bytearray(PAGE)
    snapshot.HEADER_V1.pack_into(header, 0, magic, 1, 0, state_off, state_len, mem_off, mem_len, map_off, map_len,
                                 hashlib.sha256(state).digest(), map_sum, crc, 0)
    struct.pack_into("<I", header, snapshot.HEADER_V1_CRC_AT, zlib.crc32(header))
    with open(dst, "wb") as f:
        f.write(bytes(header) + state + data[PAGE + state_len:sums_off])


def test_version_1_files_still_restore(counter_snapshot, tmp_path):
    path, data = counter_snapshot
    old = tmp_path / "v1.snap"
    _as_version_1(path, old)
    assert snapshot.verify(str(old))["format"] == 1
    _restores_eagerly_and_runs(old, data)     # checked whole at open, mapped from the file
    bad = bytearray(open(old, "rb").read())
    with snapshot.open_snapshot(str(old)) as snap:
        bad[_file_offset(snap, DATA_AT) + 9] ^= 1
    (tmp_path / "v1bad.snap").write_bytes(bad)
    with pytest.raises(SnapshotError, match="memory checksum mismatch"):
        snapshot.open_snapshot(str(tmp_path / "v1bad.snap"))


def test_page_sums_are_crc32c():
    """The table holds the standard CRC32C (the C core's, checked against a Python one)."""
    def crc32c(data: bytes) -> int:
        c = 0xFFFFFFFF
        for b in data:
            c ^= b
            for _ in range(8):
                c = (c >> 1) ^ (0x82F63B78 & -(c & 1))
        return c ^ 0xFFFFFFFF
    from hvtui._core import ffi
    page = _pattern(7)
    buf = ffi.from_buffer(bytearray(page * 3))
    sums = snapshot.page_sums(buf, array.array("Q", [1, 2]))
    assert struct.unpack("<2I", sums) == (crc32c(page), crc32c(page))
