"""Memory a guest or an input can grow (issue 12): each queue and list a guest or a client
fills is bounded, and the monitor's memory stays where it was."""
from __future__ import annotations

import asyncio
import gc
import re
import sys

import psutil
import pytest

from peak_rss import run_with_peak
from hvtui.api import HVC, Boot, GuestSpec
from hvtui.host import INPUT_LIMIT
from hvtui.vmm.devices.virtio import console as vconsole
from hvtui.vmm.devices.virtio.mmio import FAILURES_KEPT
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm
MiB = 1 << 20


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(1 << 20))
    return str(path)


async def test_a_guest_looping_on_a_failed_negotiation_grows_nothing(host, disk):
    """blkbench negotiates an unoffered feature in a loop (about a thousand times a
    second here): the device keeps its last few reasons and a count, nothing more."""
    g = await host.create(GuestSpec("blkbench", name="neg", disk=disk, boot=Boot(cmdline="mode=badring kind=feat times=0")))
    await host.wait_for_output("neg", b"blkbench: 1000 bad negotiations refused", timeout=30)
    before = rss()
    await host.wait_for_output("neg", b"blkbench: 3000 bad negotiations refused", timeout=60)
    transport = g.machine.board.paravirt.transports[0]
    assert transport.failure_count >= 3000
    assert len(transport.failures) <= FAILURES_KEPT
    shown = g.machine.board.device_failures()
    assert len(shown) <= FAILURES_KEPT + 1 and re.search(r"\d+ earlier failure\(s\)", shown[-1]), shown[-3:]
    assert rss() - before < 4 * MiB
    assert g.state == State.RUNNING


async def test_send_input_takes_what_fits_and_says_how_much(host):
    g = await host.create(GuestSpec("counter", name="deaf", memory_mib=16))    # never reads COM1
    await host.wait_for_output("deaf", b"count 1\r\n")
    before = rss()
    push = b"x" * (100 * MiB)
    taken = host.send_input("deaf", push)
    del push
    assert taken == INPUT_LIMIT
    assert host.send_input("deaf", b"more") == 0             # full: nothing more is taken
    await asyncio.sleep(0.2)
    assert len(g.pending_input) <= INPUT_LIMIT
    assert rss() - before < 8 * MiB, "the monitor kept the push"
    assert host.send_input("deaf", b"x" * MiB, console=HVC) == vconsole.INPUT_LIMIT
    assert host.send_input("deaf", b"y", console=HVC) == 0


async def test_input_is_delivered_as_room_appears(host):
    """A client that sends again when there is room gets all of it through, in order."""
    await host.create(GuestSpec("shell", name="sh", memory_mib=16))
    await host.wait_for_output("sh", b"hvtui> ")
    lines = b"".join(b"echo line %d\r" % i for i in range(400))        # ~5 KiB
    sent = 0
    while sent < len(lines):
        await host.wait_input_room("sh")
        sent += host.send_input("sh", lines[sent:sent + 1000])
    await host.wait_for_output("sh", b"\nline 399\r\n", timeout=60)      # the answer, not the echo
    out = bytes(host.get("sh").history)
    assert [int(n) for n in re.findall(rb"\nline (\d+)\r", out)] == list(range(400))


def _peak_rss_mib(command: str) -> tuple[int, float, str]:
    """Run a shell pipeline; the exit status and the peak RSS (MiB) of its largest process."""
    code, err, peak = run_with_peak(["sh", "-c", command], stdin=None)
    return code, peak, err.decode()


@pytest.mark.parametrize("guest", ["counter", "shell"])
def test_piping_200_mb_into_a_guest_keeps_the_monitor_small(tmp_path, guest):
    """stdin is read only as fast as the guest takes it: `head` waits on a full pipe."""
    hvtui = f"{sys.executable} -m hvtui run {guest} --timeout 5 --log-dir {tmp_path}"
    code, idle, _ = _peak_rss_mib(f"{hvtui} < /dev/null")
    code, peak, err = _peak_rss_mib(f"head -c 200M /dev/zero | {hvtui}")
    assert code == 124 and "timed out" in err, err
    assert peak - idle < 16, f"peak {peak:.0f} MiB with 200 MB piped in, {idle:.0f} MiB without"


async def test_console_logs_are_capped_and_rotated(tmp_path):
    from hvtui.host import Host
    async with Host(log_dir=tmp_path, sample_interval=0.2, log_max_bytes=256, log_keep=2) as host:
        await host.create(GuestSpec("counter", name="flood", memory_mib=16))
        await host.wait_for_output("flood", b"count 90\r\n", timeout=60)     # ~900 bytes: 3+ rotations
        await host.stop("flood")
        host._drain(host.get("flood"))
        host.get("flood").log.flush()
        logs = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("flood.1.log"))   # run 1's
        assert logs == ["flood.1.log", "flood.1.log.1", "flood.1.log.2"]
        for name in logs:
            assert (tmp_path / name).stat().st_size <= 256
        kept = b"".join((tmp_path / n).read_bytes() for n in ("flood.1.log.2", "flood.1.log.1", "flood.1.log"))
        counts = [int(n) for n in re.findall(rb"count (\d+)\r\n", kept)]
        assert counts == list(range(counts[0], counts[0] + len(counts))) and counts[-1] >= 90


def test_host_kicks_are_a_set(tmp_path):
    """virtio-console input while the worker is busy queues one look per queue, not one per push."""
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    m = Machine(MachineConfig(name="k", image=images.resolve("vconsole"), memory_mib=16))
    try:
        for _ in range(10000):
            m.board.push_hvc_input(b"")
        assert len(m.board.paravirt._kicks) <= 2
    finally:
        m.destroy()
