"""`hvtui bench pv`: the same disk job through a paravirtual device and through emulated
hardware, in the same run.

The blkbench guest writes, reads back and verifies data through virtio-blk (requests in
a virtqueue, notify by ioeventfd: no exit) and through the emulated ATA disk (PIO: one
port-I/O exit per 4 bytes). It marks each phase on the scratch port (1 pv write, 2 pv
read, 3 emu write, 4 emu read, 0 end); the monitor times the phases itself and counts
every vCPU exit inside them. Medians of --runs; speedup = pv MiB/s / emu MiB/s.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

from hvtui import images
from hvtui._core import lib
from hvtui.errors import HvError
from hvtui.vmm.kvm import Kvm
from hvtui.vmm.machine import Machine, MachineConfig, State

PHASES = {1: ("pv", "write"), 2: ("pv", "read"), 3: ("emu", "write"), 4: ("emu", "read")}


def _total_exits(machine: Machine) -> int:
    return sum(v.stats.exits[i] for v in machine.vcpus for i in range(lib.HV_NR_KVM_EXITS))


def run_once(disk: str, pv_mib: int, emu_kib: int, timeout: float = 600.0) -> dict:
    """One blkbench run: {(path, op): (seconds, exits)}."""
    cfg = MachineConfig(name="pvbench", image=images.resolve("blkbench"), memory_mib=128, watchdog_s=0,
                        cmdline=f"pv_mib={pv_mib} emu_kib={emu_kib}", disk=disk)
    m = Machine(cfg)
    marks: dict = {}
    current: list = []

    def on_mark(value: int) -> None:
        now, exits = time.perf_counter(), _total_exits(m)
        if value in PHASES:
            current[:] = [value, now, exits]
        elif value == 0 and current:
            phase, t0, e0 = current
            marks[PHASES[phase]] = (now - t0, exits - e0)
            current.clear()
    m.scratch.on_write = on_mark
    try:
        m.start()
        if not m.join(timeout):
            raise HvError(f"blkbench did not finish within {timeout:.0f}s")
        out = m.read_console().decode(errors="replace")
        if m.state != State.STOPPED or m.exit_code != 0:
            raise HvError(f"blkbench failed ({m.stop_reason}): {out.strip().splitlines()[-1:] or '?'}")
        if len(marks) != len(PHASES):
            raise HvError(f"blkbench marked {len(marks)} of {len(PHASES)} phases")
        return marks
    finally:
        m.destroy()


def measure(runs: int = 5, pv_mib: int = 16, emu_kib: int = 256) -> dict:
    kvm = Kvm.get()
    sizes = {"pv": pv_mib, "emu": emu_kib / 1024}
    rates: dict = {k: [] for k in PHASES.values()}
    exits: dict = {k: [] for k in PHASES.values()}
    with tempfile.TemporaryDirectory(prefix="hvtui-bench-") as d:
        disk = os.path.join(d, "disk.img")
        with open(disk, "wb") as f:
            f.truncate((pv_mib + 64) << 20)
        for _ in range(runs):
            for key, (seconds, n) in run_once(disk, pv_mib, emu_kib).items():
                rates[key].append(sizes[key[0]] / seconds)
                exits[key].append(n / sizes[key[0]])
    med = statistics.median
    r = {f"{path}_{op}_mib_s": round(med(rates[(path, op)]), 3) for path, op in PHASES.values()}
    result = {
        "kvm": kvm.kind, "runs": runs, "pv_mib": pv_mib, "emu_kib": emu_kib, **r,
        "exits_per_mib_pv": round(med(exits[("pv", "write")] + exits[("pv", "read")]), 1),
        "exits_per_mib_emu": round(med(exits[("emu", "write")] + exits[("emu", "read")]), 1),
        "speedup_read": round(r["pv_read_mib_s"] / r["emu_read_mib_s"], 1),
        "speedup_write": round(r["pv_write_mib_s"] / r["emu_write_mib_s"], 1),
        "exits_per_mib": {f"{p}_{o}": round(med(exits[(p, o)]), 1) for p, o in PHASES.values()},
    }
    return result


def main(args) -> int:
    result = measure(args.runs, args.pv_mib, args.emu_kib)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"KVM: {result['kvm']}   {result['runs']} runs, medians; virtio-blk {result['pv_mib']} MiB, "
          f"emulated ATA PIO {result['emu_kib']} KiB per direction")
    e = result["exits_per_mib"]
    for op in ("write", "read"):
        print(f"  {op:<5}  virtio-blk {result[f'pv_{op}_mib_s']:>9.1f} MiB/s {e[f'pv_{op}']:>9.1f} exits/MiB   "
              f"ATA PIO {result[f'emu_{op}_mib_s']:>7.3f} MiB/s {e[f'emu_{op}']:>9.1f} exits/MiB   "
              f"speedup {result[f'speedup_{op}']:.0f}x")
    return 0
