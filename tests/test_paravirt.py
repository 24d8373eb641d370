"""Paravirtual vs emulated devices on real KVM: the blkbench guest moves and verifies data
through virtio-blk and the emulated ATA disk; a guest that hands virtio-blk a malformed
ring fails the device, not the host or another guest; the virtio-console carries both ways."""
import pytest

from hvtui.api import HVC, Boot, GuestSpec
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    return str(path)


async def test_blkbench_moves_and_verifies_data_both_ways(host, disk):
    g = await host.create(GuestSpec("blkbench", name="bb", memory_mib=128, disk=disk, watchdog_s=0,
                                    boot=Boot(cmdline="pv_mib=16 emu_kib=1024")))
    await host.wait_until_ended("bb", timeout=240)
    out = bytes(g.history)
    assert g.state == State.STOPPED and g.exit_code == 0, out[-400:]
    for line in (b"pv write 16 MiB", b"pv read 16 MiB", b"emu write 1024 KiB", b"emu read 1024 KiB",
                 b"cross ok", b"blkbench: ok"):
        assert line in out
    blk = g.machine.board.paravirt.transports[0]
    assert blk.device.bytes_written >= 16 << 20 and blk.device.bytes_read >= 16 << 20
    assert blk.register_notifies == 0, "queue notifies exited instead of going through the ioeventfd"
    assert g.machine.board.ata.sector_writes >= 2048 and g.machine.board.ata.sector_reads >= 2048
    with open(disk, "rb") as f:
        assert f.read(4096) != bytes(4096)          # the data really is on the host file


@pytest.mark.parametrize("kind", ["loop", "oob", "idx", "long", "feat"])
async def test_malformed_ring_fails_the_device_only(host, disk, kind):
    bystander = await host.create(GuestSpec("counter", name="bystander"))
    g = await host.create(GuestSpec("blkbench", name="bad", disk=disk, boot=Boot(cmdline=f"mode=badring kind={kind}")))
    await host.wait_until_ended("bad", timeout=30)
    out = bytes(g.history)
    assert g.state == State.STOPPED and g.exit_code == 0, out[-300:]
    expected = b"features refused" if kind == "feat" else b"device needs reset"
    assert expected in out
    assert g.machine.board.device_failures(), "the device did not say why it failed"
    await host.wait_for_output("bystander", b"count 5\r\n", timeout=20)
    assert bystander.state == State.RUNNING


async def test_virtio_console_both_ways(host):
    g = await host.create(GuestSpec("vconsole", name="vc"))
    await host.wait_for_output("vc", b"hvc0: hello from virtio-console", console=HVC, timeout=20)
    host.send_input("vc", b"ping over virtio\r", console=HVC)
    await host.wait_for_output("vc", b"ping over virtio", console=HVC, timeout=20,
                               start=g.hvc_history.find(b"virtio-console") + 1)
    assert g.hvc_log.name.endswith(".hvc0.log")
    assert b"hello from virtio-console" in open(g.hvc_log.name, "rb").read()


@pytest.mark.parametrize("readonly", [True, False])
async def test_readonly_disk_refuses_writes(host, disk, readonly):
    """blkbench writes a sector through virtio-blk and through the ATA disk whatever the
    disk says: a read-only one refuses both (virtio status IOERR, ATA ABRT) and the file
    stays zero; the same guest on a writable disk gets both written (the control)."""
    g = await host.create(GuestSpec("blkbench", name="ro", disk=disk, disk_readonly=readonly,
                                    boot=Boot(cmdline="mode=rowrite")))
    await host.wait_until_ended("ro", timeout=60)
    out = bytes(g.history)
    verdict = b"refused" if readonly else b"accepted"
    assert f"rowrite: virtio-blk offers read-only: {'yes' if readonly else 'no'}".encode() in out, out
    assert b"rowrite: virtio-blk write " + verdict in out, out
    assert b"rowrite: ata write " + verdict in out, out
    if readonly:
        assert b"request status 1" in out and b"error 0x04" in out      # VIRTIO_BLK_S_IOERR, ABRT
        assert g.exit_code == 0
    with open(disk, "rb") as f:
        head = f.read(8 * 512 + 4096)
    assert (head == bytes(len(head))) == readonly      # nothing reached the file, or both writes did
    if not readonly:
        assert head[:4096] == b"\x5a" * 4096 and head[8 * 512:8 * 512 + 512] == b"\x5a" * 512


async def test_virtio_console_guest_survives_snapshot_restore(host, tmp_path):
    await host.create(GuestSpec("vconsole", name="vc0"))
    await host.wait_for_output("vc0", b"hello from virtio-console", console=HVC, timeout=20)
    path = tmp_path / "vc.snap"
    await host.snapshot("vc0", path)
    await host.kill("vc0")
    clone = await host.restore(path, name="vc1")
    host.send_input("vc1", b"after restore\r", console=HVC)
    await host.wait_for_output("vc1", b"after restore", console=HVC, timeout=20)
    assert clone.state == State.RUNNING and not clone.machine.board.device_failures()
