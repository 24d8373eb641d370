"""A snapshot to a full disk (issue 12): one line saying so, the previous file intact, the
monitor's memory as it was, and every guest running on."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import psutil
import pytest

import snaptools
from hvtui.errors import SnapshotError
from hvtui.host import GuestSpec
from hvtui.vmm import snapshot
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


async def test_snapshot_to_a_full_disk_says_so_and_keeps_everything(host, full_disk):
    path = full_disk / "sh.snap"
    counter = await host.create(GuestSpec("counter", name="bystander", memory_mib=16))
    shell = await host.create(GuestSpec("shell", name="sh", memory_mib=16))
    await host.wait_for_output("sh", b"hvtui> ")
    await host.snapshot("sh", path)                   # a small one fits: the previous file
    before = digest(path)
    host.send_input("sh", b"mem 4\r")                 # now it holds 4 MiB more than the disk
    await host.wait_for_output("sh", b"touched 4 MiB", timeout=20)
    rss = psutil.Process().memory_info().rss
    with pytest.raises(SnapshotError) as err:
        await host.snapshot("sh", path)
    message = str(err.value)
    assert "no space left on device" in message and "previous file is intact" in message, message
    assert "\n" not in message
    assert psutil.Process().memory_info().rss - rss < 32 << 20, "the failed save grew the monitor"
    assert digest(path) == before and snapshot.verify(str(path))["name"] == "sh"
    assert sorted(p.name for p in full_disk.iterdir()) == ["sh.snap"]      # no temporary left
    assert shell.state == State.RUNNING and counter.state == State.RUNNING
    host.send_input("sh", b"echo still here\r")
    await host.wait_for_output("sh", b"still here\r\n", timeout=20)
    await host.wait_for_output("bystander", b"count 3\r\n", timeout=20)


def test_cli_snapshot_to_a_full_disk_is_one_line_not_a_timeout(tmp_path, full_disk):
    snaptools.fill(full_disk, 16 << 10)              # less room than any snapshot needs
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", "counter", "--snapshot-after", "0.3",
                        "--snapshot-to", str(full_disk / "c.snap"), "--timeout", "30",
                        "--log-dir", str(tmp_path / "logs")],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], lines
    assert "timed out" not in err and "Traceback" not in err
    assert not (full_disk / "c.snap").exists()
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
