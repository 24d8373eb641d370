"""Snapshot files made by an attacker (issue 12): the state section edited and every
checksum recomputed, a header claiming gigabytes, a directory, a full disk. Each is one
line and creates nothing; the monitor's memory stays bounded; every other guest runs on."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import pytest

import snaptools
from peak_rss import run_with_peak
from hvtui.errors import SnapshotError
from hvtui.host import GuestSpec
from hvtui.vmm import snapshot
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def disk_snapshot(tmp_path_factory):
    """A real snapshot of a vconsole guest with a disk: its virtio-console queues are set up
    and ready, and the ATA disk and virtio-blk are in it."""
    import time
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    d = tmp_path_factory.mktemp("hostile")
    disk = d / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    m = Machine(MachineConfig(name="victim", image=images.resolve("vconsole"), memory_mib=16, disk=str(disk)))
    try:
        m.start()
        deadline = time.monotonic() + 20
        out = b""
        while b"ready" not in out and time.monotonic() < deadline:
            out += m.board.read_hvc() + m.read_console()
            time.sleep(0.05)
        path = d / "good.snap"
        m.snapshot(str(path))
    finally:
        m.stop()
        m.destroy()
    state = snaptools.state_of(path)
    assert state["machine"]["devices"]["mmio:0xd0001000"]["queues"][0]["ready"], "vconsole set up no queue"
    return path


def ata(state):
    return state["machine"]["devices"]["port:0x1f0"]


def vq(state, i=0):
    return state["machine"]["devices"]["mmio:0xd0001000"]["queues"][i]


def deep(state):
    state["config"]["cmdline"] = "DEEP"
    text = json.dumps(state)
    return text.replace('"DEEP"', "[" * 20000 + "]" * 20000)


def set_(path, value):
    def edit(state):
        *parents, last = path
        node = state
        for p in parents:
            node = node(state) if callable(p) else node[p]
        node[last] = value
    return edit


EDITS = {
    # the three the issue names
    "json nested 20,000 deep": (deep, "nested too deeply"),
    "memory_mib as a string": (set_(["config", "memory_mib"], "16"), r"config\.memory_mib: expected an integer, got str"),
    "name as a number": (set_(["config", "name"], 5), r"config\.name: expected a string, got int"),
    # the envelope and the configuration
    "NaN": (lambda s: json.dumps({**s, "created": float("nan")}), "NaN is not a number"),
    "memory out of range": (set_(["config", "memory_mib"], 1 << 40), "memory_mib: .* is outside"),
    "vcpus out of range": (set_(["config", "vcpus"], -1), r"config\.vcpus: -1 is outside"),
    "watchdog negative": (set_(["config", "watchdog_s"], -5), r"watchdog_s: -5 is outside"),
    "unknown config key": (set_(["config", "evil"], 1), "unexpected evil"),
    "name with a slash": (set_(["config", "name"], "../x"), "is not a guest name"),
    "huge cmdline": (set_(["config", "cmdline"], "x" * 100000), r"cmdline: a string of 100000 characters"),
    "a vCPU too many": (lambda s: s["machine"]["vcpus"].append(s["machine"]["vcpus"][0]), "2 vCPUs saved"),
    # raw kvm structs and MSRs
    "regs of the wrong size": (lambda s: s["machine"]["vcpus"][0].__setitem__("regs", snaptools.b64(b"x" * 7)),
                               r"regs: 7 bytes, expected 144"),
    "regs not bytes": (lambda s: s["machine"]["vcpus"][0].__setitem__("regs", "AAAA"), r"regs: expected bytes"),
    "bad base64": (lambda s: s["machine"]["vcpus"][0].__setitem__("regs", {"$b64": "!!"}), "not valid JSON"),
    "MSR value of 2^70": (lambda s: s["machine"]["vcpus"][0]["msrs"].append([0x10, 1 << 70]), r"msrs\[\d+\]\[1\]"),
    "uart blob too long": (lambda s: s["machine"]["vm"].__setitem__("uart", snaptools.b64(bytes(100000))),
                           r"vm\.uart: 100000 bytes"),
    # devices: the map, then each device's own state
    "a thousand devices": (lambda s: s["machine"]["devices"].update({f"port:{i:#x}": {} for i in range(1000)}),
                           r"\d+ devices \(at most 64\)"),
    "device state nested deep": (lambda s: s["machine"]["devices"]["port:0x524"].__setitem__(
        "value", [[[[[[1]]]]]]), "nested more than"),
    "ATA sector 2^40": (lambda s: ata(s).update(mode="read", current=1 << 40, remaining=1),
                        r"ATA disk state: current must be an integer 0\.\.0x800"),
    "ATA transfer past the end": (lambda s: ata(s).update(mode="write", current=2040, remaining=100),
                                  "runs past the end of the 2048-sector disk"),
    "ATA position inside a word": (lambda s: ata(s).update(pos=3), "pos 3 is not on a word boundary"),
    "ATA buffer short": (lambda s: ata(s).update(buffer="00"), "buffer must be exactly 512 bytes"),
    "virtqueue outside RAM": (lambda s: vq(s).update(desc=0x7F0000000000), "descriptor table: guest range"),
    "virtqueue misaligned": (lambda s: vq(s).update(used=vq(s)["used"] + 2), "used ring at .* is not 4-byte aligned"),
    "virtqueue size 3": (lambda s: vq(s).update(size=3), "queue size 3 is not a power of two"),
    "virtqueue index 2^20": (lambda s: vq(s).update(last_avail=1 << 20), r"queue last_avail .* outside 0\.\.0xffff"),
    "virtio DRIVER_OK alone": (set_(["machine", "devices", "mmio:0xd0001000", "status"], 7),
                               "DRIVER_OK without FEATURES_OK"),
    "virtio features not offered": (set_(["machine", "devices", "mmio:0xd0001000", "driver_features"], (1 << 64) - 1),
                                    "were not offered"),
    "virtio-console input of 100 KiB": (set_(["machine", "devices", "mmio:0xd0001000", "device", "pending"],
                                             "00" * (100 << 10)), "pending must be at most 65536 bytes"),
    "a device state of 2 MiB": (set_(["machine", "devices", "mmio:0xd0001000", "device", "pending"],
                                     "00" * (1 << 20)), r"pending: 2097152 characters or bytes \(at most"),
    "scratch register -1": (set_(["machine", "devices", "port:0x524", "value"], -1), "scratch register state: value"),
    "an empty virtio slot with state": (set_(["machine", "devices", "mmio:0xd0005000", "status"], 1),
                                        "an empty slot with a driver's state"),
}


def make(disk_snapshot, tmp_path, edit) -> str:
    bad = tmp_path / "edited.snap"
    state = snaptools.state_of(disk_snapshot)
    result = edit(state)
    text = result if isinstance(result, str) else json.dumps(result if result is not None else state)
    snaptools.rebuild(disk_snapshot, bad, text.encode())
    return str(bad)


@pytest.mark.parametrize("case", list(EDITS))
async def test_edited_state_is_refused_and_nothing_is_built(host, disk_snapshot, tmp_path, case):
    edit, message = EDITS[case]
    bad = make(disk_snapshot, tmp_path, edit)
    bystander = await host.create(GuestSpec("counter", name="bystander", memory_mib=16))
    with pytest.raises(SnapshotError, match=message):
        await host.restore(bad, name="never")
    assert list(host.guests) == ["bystander"]
    await host.wait_for_output("bystander", b"count 2\r\n", timeout=20)
    assert bystander.state == State.RUNNING


def test_the_unedited_file_restores(disk_snapshot, tmp_path):
    """The edits above are refused for what they changed: rebuilt untouched, it restores."""
    from hvtui.vmm.machine import Machine
    same = make(disk_snapshot, tmp_path, lambda s: None)
    with snapshot.open_snapshot(same) as snap:
        Machine.from_snapshot(snap, "fine").destroy()


@pytest.mark.parametrize("case", ["json nested 20,000 deep", "memory_mib as a string", "name as a number",
                                  "ATA sector 2^40", "virtqueue outside RAM"])
def test_cli_edited_state_is_one_line(disk_snapshot, tmp_path, case):
    edit, message = EDITS[case]
    bad = make(disk_snapshot, tmp_path, edit)
    commands = [["run", bad, "--log-dir", str(tmp_path / "logs"), "--disk", str(tmp_path / "d")]]
    if "ATA" not in case and "virtqueue" not in case:      # those pass the schema: restore refuses them
        commands.append(["snapshot", "info", bad])
    (tmp_path / "d").write_bytes(bytes(1 << 20))
    for args in commands:
        r = subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        err = r.stderr.decode()
        assert r.returncode == 1 and r.stdout == b"", (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert __import__("re").search(message, err), err
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").iterdir())


def _peak_rss_mib(args) -> tuple[int, bytes, float]:
    """Run hvtui with args; its exit status, stderr and peak RSS in MiB (its own)."""
    return run_with_peak([sys.executable, "-m", "hvtui", *args])


def test_a_header_claiming_a_4_gib_state_is_refused_unread(tmp_path):
    """A sparse file whose well-formed header claims a 4 GiB state section: refused from
    the header alone (the format allows some MiB), with the monitor's peak memory small."""
    path = tmp_path / "claims.snap"
    state_len = 4 << 30
    mem_off = -(-(snapshot.PAGE + state_len) // snapshot.PAGE) * snapshot.PAGE
    header = bytearray(snapshot.PAGE)
    snapshot.HEADER.pack_into(header, 0, snapshot.MAGIC, snapshot.VERSION, 0, snapshot.PAGE, state_len, mem_off,
                              0, mem_off, 0, bytes(32), bytes(32), mem_off, 0, bytes(32), 0, 0)
    struct.pack_into("<I", header, snapshot.HEADER_CRC_AT, zlib.crc32(header))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(mem_off)
    for args in (["snapshot", "info", str(path)], ["run", str(path), "--log-dir", str(tmp_path / "logs")]):
        code, err, peak = _peak_rss_mib(args)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert b"state section of 4294967296 bytes" in err, err
        assert peak < 200, f"{args[0]}: peak RSS {peak:.0f} MiB"


@pytest.mark.parametrize("what", ["directory", "fifo", "device"])
def test_not_a_file_is_one_line(tmp_path, what):
    target = {"directory": tmp_path, "fifo": tmp_path / "fifo", "device": "/dev/zero"}[what]
    if what == "fifo":
        os.mkfifo(target)
    words = {"directory": "is a directory", "fifo": "is a FIFO", "device": "is a character device"}[what]
    for args, what_it_is_not in ((["snapshot", "info", str(target)], "a snapshot file"),
                                 (["run", str(target), "--log-dir", str(tmp_path / "l")], "a kernel file")):
        r = subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        err = r.stderr.decode()
        assert r.returncode == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"{words}, not {what_it_is_not}" in err, err
