"""`hvtui bench exits`: how fast the monitor serves port-I/O exits.

Four ways of running the same guest code (the exitbench image doing N `out`s) on a
freshly built machine each time:
  raw          - the floor: KVM_RUN in a bare C loop that ignores every exit (hv_bench_raw_loop);
  c            - hvtui's hot path: hv_vcpu_run, which serves port 0x80 in C with its counters;
  python       - the same exits on a port owned by a Python device (the ScratchRegister), so
                 each one returns to Python and back;
    (c and python run the machine as every guest runs: its vCPU thread, Machine._vcpu_main)
  python_floor - the same returns to Python with nothing done there (no device, no
                 dispatch): what any exit served synchronously in Python pays before the
                 device's first line, the floor of the `python` row.
Runs are interleaved and each figure is the median of --runs; ratio = c / raw.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

from hvtui import images
from hvtui._core import ffi, lib
from hvtui.vmm.kvm import Kvm, check
from hvtui.vmm.board import PYDEV_PORT
from hvtui.vmm.machine import Machine, MachineConfig


def _machine(port: int, count: int) -> Machine:
    cfg = MachineConfig(name="bench", image=images.resolve("exitbench"), memory_mib=16,
                        cmdline=f"port={port:#x} count={count} cpl=0", watchdog_s=0)
    return Machine(cfg)


def run_raw(count: int) -> float:
    m = _machine(0x80, count)
    try:
        n = ffi.new("uint64_t *")
        t0 = time.perf_counter()
        check(lib.hv_bench_raw_loop(m.vcpus[0].ptr, lib.HV_PORT_DEBUG_EXIT, n))
        dt = time.perf_counter() - t0
        return n[0] / dt
    finally:
        m.destroy()


def _run_served(port: int, count: int) -> float:
    """The machine run as hvtui runs every guest: its vCPU thread's loop (Machine._vcpu_main)
    until the guest's debug exit."""
    m = _machine(port, count)
    try:
        t0 = time.perf_counter()
        m.start()
        m.join()
        dt = time.perf_counter() - t0
        if m.exit_code is None:
            raise RuntimeError(f"exitbench did not reach its end: {m.state.value} "
                               f"{m.crash.summary() if m.crash else m.stop_reason}")
        return count / dt
    finally:
        m.destroy()


def run_python_floor(count: int) -> float:
    """hv_vcpu_run returning to Python for every exit on the Python device's port, and
    called again at once: the guest's `out`s complete with nothing done."""
    m = _machine(PYDEV_PORT, count)
    vcpu = m.vcpus[0]
    run, ptr, exit_, io = lib.hv_vcpu_run, vcpu.ptr, vcpu.exit, lib.HV_EXIT_IO
    try:
        t0 = time.perf_counter()
        while run(ptr, exit_) == 0 and exit_.reason == io:
            pass
        dt = time.perf_counter() - t0
        if exit_.reason != lib.HV_EXIT_DEBUG_EXIT:
            raise RuntimeError(f"exitbench stopped with exit {exit_.reason}")
        return count / dt
    finally:
        m.destroy()


def measure(runs: int = 5, count: int = 100000) -> dict:
    kvm = Kvm.get()
    raw, c, py, floor = [], [], [], []
    for _ in range(runs):
        raw.append(run_raw(count))
        c.append(_run_served(0x80, count))
        py.append(_run_served(PYDEV_PORT, count))
        floor.append(run_python_floor(count))
    med = statistics.median
    return {
        "kvm": kvm.kind,
        "runs": runs,
        "exits_per_run": count,
        "raw_exits_per_s": round(med(raw)),
        "c_exits_per_s": round(med(c)),
        "python_exits_per_s": round(med(py)),
        "ratio": round(med(c) / med(raw), 3),
        "python_ratio": round(med(py) / med(raw), 3),
        "python_floor_exits_per_s": round(med(floor)),
        "python_floor_ratio": round(med(floor) / med(raw), 3),
        "raw_runs": [round(x) for x in raw],
        "c_runs": [round(x) for x in c],
        "python_runs": [round(x) for x in py],
        "python_floor_runs": [round(x) for x in floor],
    }


def main(args) -> int:
    result = measure(args.runs, args.count)
    if args.json:
        print(json.dumps(result))
        return 0
    us = lambda rate: 1e6 / rate
    print(f"KVM: {result['kvm']}   {result['runs']} runs x {result['exits_per_run']} port-I/O exits, medians")
    print(f"  raw C KVM_RUN loop (floor)   {result['raw_exits_per_s']:>9,} exits/s  {us(result['raw_exits_per_s']):6.2f} us/exit")
    print(f"  hvtui C hot path             {result['c_exits_per_s']:>9,} exits/s  {us(result['c_exits_per_s']):6.2f} us/exit"
          f"  ratio {result['ratio']:.3f}")
    print(f"  Python device                {result['python_exits_per_s']:>9,} exits/s  {us(result['python_exits_per_s']):6.2f} us/exit"
          f"  ratio {result['python_ratio']:.3f}")
    print(f"  return to Python, no device  {result['python_floor_exits_per_s']:>9,} exits/s"
          f"  {us(result['python_floor_exits_per_s']):6.2f} us/exit  ratio {result['python_floor_ratio']:.3f}")
    sys.stdout.flush()
    return 0
