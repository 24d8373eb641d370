"""`hvtui bench api`: the monitor's API over its socket, beside the same calls in process.

A private monitor (`hvtui serve` in a temporary XDG_RUNTIME_DIR, so the user's own is not
touched) runs N busy guests (counters printing ten lines a second). Then, for S seconds:
  round trip  - C client processes send requests as fast as they can (a guest's view,
                the list of all guests), each timing its own requests;
  event       - meanwhile 4 subscribed clients in this process see a guest paused and
                resumed every 100 ms: from the request leaving to each client's event;
  guests      - console bytes per second of the guests during the load, against a quiet
                period just before it (1.0: not slowed at all).
The reference is the same work on an in-process monitor (api.embedded) with the same
guests, measured in the same run: a view and the list are plain calls, an event is a
callback. Figures are medians and 99th percentiles; nothing is asserted on them.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvtui import api
from hvtui.api import GuestSpec

EVENT_EVERY_S = 0.1
SUBSCRIBERS = 4


def kvm_kind() -> str:
    return "kvm_pvm" if os.path.exists("/sys/module/kvm_pvm") else "kvm"


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))] if s else float("nan")


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 4) if ms else None,
            "p99_ms": round(percentile(ms, 99), 4) if ms else None}


def fleet(n: int) -> list[GuestSpec]:
    return [GuestSpec("counter", name=f"busy-{i}", memory_mib=16) for i in range(n)]


# ---- the client processes ----
def _hammer(path: str, seconds: float, names: list[str], out) -> None:
    from hvtui.client import RemoteMonitor

    async def run():
        rtt = {"get": [], "list": []}
        errors = []
        async with RemoteMonitor(path) as m:
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                k += 1
                op, args = ("list", {}) if k % 4 == 0 else ("get", {"name": names[k % len(names)]})
                t0 = time.perf_counter()
                try:
                    await m._request(op, **args)
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
                rtt[op].append((time.perf_counter() - t0) * 1000)
        return rtt, errors
    out.put(asyncio.run(run()))


# ---- the phases ----
async def event_latencies(actor: api.Monitor, subscribers: list[api.Monitor], name: str, seconds: float) -> list[float]:
    """Pause and resume name every EVENT_EVERY_S; ms from the request to each subscriber's event."""
    waiting: dict[tuple[int, api.State], float] = {}
    latencies: list[float] = []

    def listener(i: int):
        def on(event):
            if isinstance(event, api.GuestChanged) and event.guest.name == name:
                t0 = waiting.pop((i, event.guest.state), None)
                if t0 is not None:
                    latencies.append((time.perf_counter() - t0) * 1000)
        return on
    unsubs = [s.subscribe(listener(i)) for i, s in enumerate(subscribers)]
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for verb, state in ((actor.pause, api.State.PAUSED), (actor.resume, api.State.RUNNING)):
                t0 = time.perf_counter()
                for i in range(len(subscribers)):
                    waiting[(i, state)] = t0
                await verb(name)
                await asyncio.sleep(EVENT_EVERY_S)
    finally:
        for u in unsubs:
            u()
    return latencies


def console_bytes(monitor: api.Monitor) -> int:
    return sum(g.console_bytes.get(api.SERIAL, 0) for g in monitor.guests() if g.name.startswith("busy-"))


async def progress(monitor: api.Monitor, seconds: float) -> float:
    b0, t0 = console_bytes(monitor), time.monotonic()
    await asyncio.sleep(seconds)
    return (console_bytes(monitor) - b0) / (time.monotonic() - t0)


async def in_process(guests: int, seconds: float, log_dir: str) -> dict:
    monitor = api.embedded(log_dir=log_dir)
    await monitor.open()
    try:
        for spec in fleet(guests):
            await monitor.create(spec)
        await asyncio.sleep(1.0)
        names = [f"busy-{i}" for i in range(guests)]
        rtt = {"get": [], "list": []}
        end = time.monotonic() + min(seconds, 2.0)
        k = 0
        while time.monotonic() < end:
            k += 1
            t0 = time.perf_counter()
            if k % 4 == 0:
                monitor.guests()
                rtt["list"].append((time.perf_counter() - t0) * 1000)
            else:
                monitor.guest(names[k % guests])
                rtt["get"].append((time.perf_counter() - t0) * 1000)
            if k % 200 == 0:
                await asyncio.sleep(0)       # the loop serves the guests' consoles meanwhile
        events = await event_latencies(monitor, [monitor] * SUBSCRIBERS, names[0], seconds)
        return {"get": summary(rtt["get"]), "list": summary(rtt["list"]), "event": summary(events)}
    finally:
        await monitor.close()


async def over_socket(path: str, guests: int, clients: int, seconds: float) -> dict:
    from hvtui.client import RemoteMonitor
    async with RemoteMonitor(path) as actor:
        for spec in fleet(guests):
            await actor.create(spec)
        await asyncio.sleep(1.0)
        quiet = await progress(actor, 2.0)
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        names = [f"busy-{i}" for i in range(1, guests)]      # busy-0 is paused and resumed
        procs = [ctx.Process(target=_hammer, args=(path, seconds, names, out)) for _ in range(clients)]
        for p in procs:
            p.start()
        subs = [RemoteMonitor(path) for _ in range(SUBSCRIBERS)]
        for s in subs:
            await s.open()
        try:
            loaded_task = asyncio.ensure_future(progress(actor, seconds * 0.8))
            events = await event_latencies(actor, subs, "busy-0", seconds * 0.9)
            loaded = await loaded_task
        finally:
            for s in subs:
                await s.close()
        results = [await asyncio.to_thread(out.get, True, seconds + 60) for _ in procs]
        for p in procs:
            p.join(10)
        rtt = {"get": [], "list": []}
        errors = []
        for r, e in results:
            for k in rtt:
                rtt[k] += r[k]
            errors += e
        await actor.shutdown()
    busy_quiet = quiet * (guests - 1) / guests        # busy-0 spends part of the load paused
    return {"get": summary(rtt["get"]), "list": summary(rtt["list"]), "event": summary(events),
            "requests": sum(len(v) for v in rtt.values()), "errors": errors[:10], "error_count": len(errors),
            "guest_bytes_per_s_quiet": round(quiet, 1), "guest_bytes_per_s_loaded": round(loaded, 1),
            "guest_progress_ratio": round(loaded / busy_quiet, 3) if busy_quiet else None}


def start_private_monitor(runtime: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime, "XDG_STATE_HOME": os.path.join(runtime, "state")}
    proc = subprocess.Popen([sys.executable, "-m", "hvtui", "serve", "--quiet"], env=env, cwd="/",   # as a daemon,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # client.ensure_server
    sock = Path(runtime) / "hvtui" / "monitor.sock"
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise api.HvError("the benchmark's monitor did not start: " + proc.stderr.read().decode().strip())
        time.sleep(0.05)
    return proc


def measure(guests: int, clients: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="hvb", dir="/tmp") as runtime:
        local = asyncio.run(in_process(guests, seconds, os.path.join(runtime, "logs")))
        proc = start_private_monitor(runtime)
        try:
            remote = asyncio.run(over_socket(str(Path(runtime) / "hvtui" / "monitor.sock"), guests, clients, seconds))
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def ratio(k: str) -> float | None:
        a, b = remote[k]["median_ms"], local[k]["median_ms"]
        return round(a / b, 1) if a and b else None
    return {"benchmark": "api", "kvm": kvm_kind(), "cpus": os.cpu_count(), "guests": guests, "clients": clients,
            "seconds": seconds, "socket": remote, "in_process": local,
            "ratio_median": {k: ratio(k) for k in ("get", "list", "event")}}


def main(args) -> int:
    r = measure(args.guests, args.clients, args.seconds)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0 if not r["socket"]["error_count"] else 1
    s, p = r["socket"], r["in_process"]
    print(f"hvtui bench api: {r['guests']} busy guests, {r['clients']} clients hammering for {r['seconds']:g} s, "
          f"{SUBSCRIBERS} subscribers; {r['cpus']} CPUs, {r['kvm']}")
    print(f"  {'':22} {'socket median':>14} {'p99':>10} {'in-process median':>18} {'p99':>10} {'ratio':>8}")
    for k, label in (("get", "a guest's view"), ("list", f"all {r['guests']} views"), ("event", "event latency")):
        print(f"  {label:22} {s[k]['median_ms']:>11.3f} ms {s[k]['p99_ms']:>7.3f} ms "
              f"{p[k]['median_ms']:>15.4f} ms {p[k]['p99_ms']:>7.4f} ms {r['ratio_median'][k]:>7}x")
    print(f"  {s['requests']:,} requests, {s['error_count']} errors; guests' console output under load "
          f"{s['guest_progress_ratio']} of the quiet rate")
    return 0 if not s["error_count"] else 1
