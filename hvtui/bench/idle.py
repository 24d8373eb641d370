"""`hvtui bench idle`: what idle guests cost the host, and how fast they still answer.

N shell guests wait for input on their serial consoles (the idle port: their vCPUs sleep
in the monitor, woken by input). Measured over --seconds: the whole monitor process's CPU
(user + system, every thread), then the latency of an echo through each guest's console
(a key sent with Host.send_input until the guest's echo reaches a console subscriber),
--rounds per guest. The reference, when QEMU is installed: N `qemu-system-x86_64 -M
microvm` processes each running an idle PVH kernel (tinykernel.pvh_idle: `hlt`), their
CPU summed over the same time. (QEMU cannot boot the shell, which uses hvtui's own boot
ABI: the QEMU guests are idler than ours, which wake on their idle port once a second.)
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

from hvtui.bench.tinykernel import pvh_idle
from hvtui.vmm.kvm import Kvm

QEMU = "qemu-system-x86_64"
PROMPT = b"hvtui> "


async def _hvtui(guests: int, seconds: float, rounds: int, log_dir: str) -> tuple[float, list[float]]:
    from hvtui.host import GuestSpec, Host
    async with Host(log_dir=log_dir) as host:
        for i in range(guests):
            await host.create(GuestSpec("shell", name=f"idle{i}", memory_mib=8))
        for i in range(guests):
            await host.wait_for_output(f"idle{i}", PROMPT, timeout=60)
        await asyncio.sleep(1.0)
        before, t0 = os.times(), time.monotonic()
        await asyncio.sleep(seconds)
        after, t1 = os.times(), time.monotonic()
        cpu = (after.user + after.system - before.user - before.system) / (t1 - t0) * 100
        latencies = []
        loop = asyncio.get_running_loop()
        for r in range(rounds):
            for i in range(guests):
                name, key = f"idle{i}", b"abcdefghij"[r % 10:r % 10 + 1]
                got = loop.create_future()
                unsubscribe = host.console_subscribe(
                    name, lambda data, got=got, key=key: got.done() or key not in data or got.set_result(None))
                t = time.perf_counter()
                host.send_input(name, key)
                await asyncio.wait_for(got, 5)
                latencies.append((time.perf_counter() - t) * 1e3)
                unsubscribe()
        return cpu, latencies


def _qemu(guests: int, seconds: float, directory: str) -> float | None:
    if shutil.which(QEMU) is None:
        return None
    kernel = os.path.join(directory, "idle-pvh.elf")
    with open(kernel, "wb") as f:
        f.write(pvh_idle())
    cmd = [QEMU, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", "8", "-nodefaults", "-no-user-config",
           "-display", "none", "-serial", "null", "-kernel", kernel]
    procs = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(guests)]
    try:
        time.sleep(2.0)
        ps = [psutil.Process(p.pid) for p in procs]

        def total():
            return sum(sum(p.cpu_times()[:2]) for p in ps)
        before, t0 = total(), time.monotonic()
        time.sleep(seconds)
        return (total() - before) / (time.monotonic() - t0) * 100
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def measure(guests: int = 64, seconds: float = 10.0, rounds: int = 3) -> dict:
    kvm = Kvm.get()
    with tempfile.TemporaryDirectory(prefix="hvtui-bench-idle-") as d:
        cpu, latencies = asyncio.run(_hvtui(guests, seconds, rounds, d))
        qemu = _qemu(guests, seconds, d)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"kvm": kvm.kind, "guests": guests, "seconds": seconds,
            "cpu_percent": round(cpu, 2), "qemu_cpu_percent": None if qemu is None else round(qemu, 2),
            "echo_p50_ms": round(statistics.median(latencies), 3), "echo_p99_ms": round(q[98], 3),
            "echoes": len(latencies)}


def main(args) -> int:
    r = measure(args.guests, args.seconds)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"KVM: {r['kvm']}   {r['guests']} idle guests for {r['seconds']:g} s")
    print(f"  hvtui monitor (all threads)   {r['cpu_percent']:6.2f} % of one core")
    if r["qemu_cpu_percent"] is None:
        print(f"  {QEMU} is not installed: no reference in this run")
    else:
        print(f"  {r['guests']} QEMU microvm processes  {r['qemu_cpu_percent']:6.2f} % of one core")
    print(f"  echo through a guest's console: median {r['echo_p50_ms']:.2f} ms, p99 {r['echo_p99_ms']:.2f} ms "
          f"({r['echoes']} echoes)")
    sys.stdout.flush()
    return 0
