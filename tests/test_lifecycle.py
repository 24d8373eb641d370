"""The lifecycle through the api on real KVM: one table says what is allowed; end states
tell exited, crashed, stopped and killed apart; a guest starts again from its spec and
resets; the monitor's own holds on the vCPUs (snapshots, the watchdog) are never a pause;
a clone keeps its disk."""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from hvtui import api
from hvtui.api import Boot, GuestSpec, State

sys.path.insert(0, str(Path(__file__).parent))
import kernels  # noqa: E402

pytestmark = pytest.mark.kvm


def counts(history: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"^count (\d+)\r$", bytes(history), re.M)]


@pytest.fixture
def events(host):
    seen: list[api.Event] = []
    host.subscribe(seen.append)
    return seen


def states(events, name) -> list[State]:
    return [e.guest.state for e in events if isinstance(e, api.GuestChanged) and e.guest.name == name]


def test_the_table_is_the_one_rule():
    assert api.allowed("pause", State.RUNNING) and not api.allowed("pause", State.PAUSED)
    assert api.allowed("start", State.CRASHED) and api.allowed("start", State.STOPPED)
    assert not api.allowed("remove", State.RUNNING) and api.allowed("snapshot", State.PAUSED)
    with pytest.raises(api.StateError, match="^g is running; only a guest that is stopped or crashed can be removed$"):
        api.check("remove", "g", State.RUNNING)
    assert {a for a in api.ACTIONS if api.allowed(a, State.PAUSED)} == {
        "resume", "stop", "kill", "reset", "snapshot", "clone", "input", "gdb"}


async def test_end_states_are_told_apart(host):
    m = host.api
    await m.create(GuestSpec("shell", name="ex", memory_mib=16))
    await m.create(GuestSpec("crash", name="cr", memory_mib=16, boot=Boot(cmdline="ud")))
    await m.create(GuestSpec("counter", name="st", memory_mib=16))
    await m.create(GuestSpec("counter", name="ki", memory_mib=16))
    await host.wait_for_output("ex", b"hvtui> ")
    await m.send_input("ex", b"exit 7\r")
    await host.wait_until_ended("ex", timeout=10)
    await host.wait_until_ended("cr", timeout=10)
    await m.stop("st")
    await m.kill("ki")
    assert {n: m.view(n).status for n in ("ex", "cr", "st", "ki")} == {
        "ex": "exited 7", "cr": "crashed: triple fault (vcpu 0, rip=" + m.view("cr").crash.summary.split("rip=")[1],
        "st": "stopped", "ki": "killed"}
    assert m.view("ex").end == api.End("exited", "debug exit", 7, 7)
    assert m.view("cr").crash.reason == "triple fault" and "RIP" in m.view("cr").crash.report.upper()
    assert m.view("cr").end.kind == "crashed" and m.view("cr").log.endswith("cr.1.log")


async def test_start_again_and_reset_make_new_runs_with_their_own_logs(host, events, tmp_path):
    m = host.api
    await m.create(GuestSpec("crash", name="cr", memory_mib=16, boot=Boot(cmdline="ud")))
    await host.wait_until_ended("cr", timeout=10)
    first_log = Path(m.view("cr").log)
    assert first_log.name == "cr.1.log" and b"triple fault" in first_log.read_bytes()
    again = await m.start("cr")                       # from its spec, as it was given
    assert again.run == 2 and again.log.endswith("cr.2.log")
    await host.wait_until_ended("cr", timeout=10)
    assert m.view("cr").status.startswith("crashed: triple fault")
    assert b"triple fault" in first_log.read_bytes()            # the first run's log is not overwritten
    assert (tmp_path / "logs" / "cr.log").resolve() == tmp_path / "logs" / "cr.2.log"

    await m.create(GuestSpec("counter", name="c", memory_mib=16))
    await host.wait_for_output("c", b"count 5\r\n")
    await m.reset("c")
    view = m.view("c")
    assert view.state == State.RUNNING and view.run == 2
    await host.wait_for_output("c", b"count 1\r\n", start=len(host.get("c").history))
    assert counts(Path(view.log).read_bytes())[:2] == [0, 1]   # a new boot, counting from 0
    assert State.STOPPED not in states(events, "c")            # the reset is not an end
    with pytest.raises(api.StateError, match="^c is running; only a guest that is created, stopped or crashed can be started$"):
        await m.start("c")


async def test_a_snapshot_during_the_users_pause_leaves_it_paused(host, events, tmp_path):
    m = host.api
    await m.create(GuestSpec("counter", name="p", memory_mib=16))
    await host.wait_for_output("p", b"count 3\r\n")
    await m.pause("p")
    await m.snapshot("p", str(tmp_path / "p.snap"))
    assert m.view("p").state == State.PAUSED
    frozen = len(host.get("p").history)
    await asyncio.sleep(0.5)
    host._drain(host.get("p"))
    assert len(host.get("p").history) == frozen, "the guest ran after a snapshot of its pause"
    assert states(events, "p") == [State.RUNNING, State.PAUSED]
    await m.resume("p")
    await m.snapshot("p", str(tmp_path / "live.snap"))     # a live snapshot is no pause either
    assert states(events, "p") == [State.RUNNING, State.PAUSED, State.RUNNING]


async def test_a_pause_or_resume_during_the_monitors_hold_is_honoured(host, events):
    """What a snapshot does while it writes: hold the vCPUs. A user's pause meanwhile is a
    pause at once and stays one after the hold; a resume meanwhile runs the guest after it."""
    g = await host.create(GuestSpec("counter", name="h", memory_mib=16))
    await host.wait_for_output("h", b"count 2\r\n")
    machine = g.machine
    with machine.quiesced():
        assert machine.state.value == "running" and machine.vcpus_parked()
        await asyncio.to_thread(machine.pause)
        assert machine.state.value == "paused"
    assert machine.state.value == "paused" and machine.vcpus_parked()
    frozen = len(g.history)
    await asyncio.sleep(0.4)
    host._drain(g)
    assert len(g.history) == frozen
    with machine.quiesced():
        machine.resume()
        assert machine.state.value == "running"
        await asyncio.sleep(0.3)
        host._drain(g)
        assert len(g.history) == frozen, "vCPUs ran while held"
    await host.wait_for_output("h", b"count", start=frozen)
    assert [s.value for s in states(events, "h")] == ["running", "paused", "running"]


async def test_the_watchdog_never_pauses_a_healthy_guest(host, events, tmp_path):
    """A kernel halted with interrupts off makes no exits: the watchdog looks at it every
    sample (holding its vCPUs) and finds it healthy. No pause event, ever."""
    halt = tmp_path / "halt.elf"
    halt.write_bytes(kernels.elf32(head=kernels.mb1_header() + bytes(4),
                                   body=bytes([0xFA, 0xF4, 0xEB, 0xFD])))      # cli; hlt; jmp hlt
    host.sample_interval = 0.05
    g = await host.create(GuestSpec(str(halt), name="calm", memory_mib=16, watchdog_s=0.2))
    await asyncio.sleep(2.0)
    assert g.machine.holds > 5, "the watchdog did not look"
    assert g.state.value == "running"
    assert states(events, "calm") == [State.RUNNING]


async def test_a_clone_keeps_its_disk_read_only(host, tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4 << 20))
    m = host.api
    await m.create(GuestSpec("blkbench", name="b", memory_mib=64, disk=str(disk),
                             boot=Boot(cmdline="pv_mib=1 emu_kib=4")))
    await host.wait_for_output("b", b"blkbench", timeout=20)
    [clone] = await m.clone("b", ["b2"], str(tmp_path / "b.snap"))
    original = m.view("b").spec
    assert clone.spec.disk == str(disk) == original.disk       # kept: read-only, so one guest writes it
    assert clone.spec.disk_readonly and not original.disk_readonly
    assert host.get("b2").machine.board.disk is not None


def test_spec_and_machine_config_map_every_field():
    """One mapping each way between the api's spec and the machine's config: nothing is
    lost on the way (a clone lost its disk when the spec was copied by hand)."""
    import dataclasses

    from hvtui.guest import machine_config, spec_of
    from hvtui.vmm.machine import MachineConfig
    spec = GuestSpec("counter", name="x", memory_mib=48, vcpus=2, watchdog_s=3.0, disk="/tmp/d", disk_readonly=True,
                     overcommit=True, boot=Boot(cmdline="a b", initrd=("/tmp/i arg",), exit_code="qemu"))
    config = machine_config(spec)
    assert spec_of(config) == spec
    assert {f.name for f in dataclasses.fields(MachineConfig)} <= set(dataclasses.asdict(config))
