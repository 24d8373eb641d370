"""`hvtui bench tui`: the TUI under load, headless.

It runs the app (120x40, no terminal) over N busy guests (counters printing ten lines a
second, and one shell) for S seconds with the shell's console open, types into the shell
every ~100 ms and reports:
  main thread CPU share - CPU time of the main thread (Textual + the Host) / wall time;
  key-to-screen latency - from the key event entering the app to the echoed character
                          painted on the console's terminal widget (median, p99).
The goal is p99 under 100 ms with 16 guests. Figures depend on the machine and on the
kind of KVM (reported); the tests make no timed asserts.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import string
import sys
import tempfile
import time

from hvtui.api import GuestSpec

KEY_INTERVAL_S = 0.1
KEY_TIMEOUT_S = 2.0
WARMUP_S = 2.0


def kvm_kind() -> str:
    return "kvm_pvm" if os.path.exists("/sys/module/kvm_pvm") else "kvm"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


async def _painted(term, line_text: str, timeout: float) -> bool:
    """Wait until the terminal paints the cursor's row showing line_text."""
    done = asyncio.Event()

    def painted(y: int) -> None:
        scr = term.pyte_screen
        if y == scr.cursor.y and scr.display[y].rstrip().endswith(line_text):
            done.set()
    term.on_paint = painted
    try:
        await asyncio.wait_for(done.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        term.on_paint = None


async def measure(guests: int, seconds: float, log_dir: str) -> dict:
    from hvtui.tui.app import HvtuiApp
    from hvtui.tui.driving import key_event, wait_until
    from hvtui.tui.screens.console import ConsoleScreen

    specs = [GuestSpec("shell", name="shell", memory_mib=16)]
    specs += [GuestSpec("counter", name=f"counter-{i + 1}", memory_mib=16) for i in range(guests - 1)]
    app = HvtuiApp(specs=specs, log_dir=log_dir)
    latencies: list[float] = []
    missed = 0
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.fleet_started, timeout=120, what="the fleet")
        app.open_console("shell")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
        term = app.screen.term
        await wait_until(pilot, lambda: "hvtui>" in term.text(), timeout=30, what="the prompt")
        await pilot.pause(WARMUP_S)                  # let the console screen settle
        typed = ""
        main_cpu0, wall0 = time.thread_time(), time.monotonic()
        end = wall0 + seconds
        letters = string.ascii_lowercase
        i = 0
        while time.monotonic() < end:
            if len(typed) >= 40:                      # start a fresh line now and then
                app._driver.send_message(key_event("enter"))
                await wait_until(pilot, lambda: term.text().rstrip().endswith("hvtui>"), timeout=5,
                                 what="a new prompt")
                typed = ""
            ch = letters[i % len(letters)]
            i += 1
            event = key_event(ch)
            event.set_sender(app)
            t0 = time.monotonic()
            app._driver.send_message(event)
            typed += ch
            if await _painted(term, typed, KEY_TIMEOUT_S):
                latencies.append(time.monotonic() - t0)
            else:
                missed += 1
                typed = term.pyte_screen.display[term.pyte_screen.cursor.y].rstrip().rsplit("> ", 1)[-1]
            await asyncio.sleep(max(0.0, KEY_INTERVAL_S - (time.monotonic() - t0)))
        wall = time.monotonic() - wall0
        main_cpu = time.thread_time() - main_cpu0
        running = sum(1 for g in app.monitor.guests() if g.state.live)
    ms = [x * 1000 for x in latencies]
    return {
        "benchmark": "tui", "kvm": kvm_kind(), "cpus": os.cpu_count(), "guests": guests,
        "guests_running_at_end": running, "seconds": round(wall, 2),
        "main_thread_cpu_share": round(main_cpu / wall, 4),
        "keys": len(latencies), "keys_missed": missed,
        "latency_ms_median": round(statistics.median(ms), 2) if ms else None,
        "latency_ms_p99": round(percentile(ms, 99), 2) if ms else None,
        "latency_ms_max": round(max(ms), 2) if ms else None,
        "goal_p99_ms": 100,
    }


def main(args) -> int:
    with tempfile.TemporaryDirectory() as logs:
        result = asyncio.run(measure(args.guests, args.seconds, logs))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"hvtui bench tui: {result['guests']} guests ({result['guests_running_at_end']} running at the end), "
              f"{result['seconds']} s, {result['cpus']} CPUs, {result['kvm']}")
        print(f"  main thread CPU share   {result['main_thread_cpu_share'] * 100:.1f} %")
        print(f"  key-to-screen latency   median {result['latency_ms_median']} ms, "
              f"p99 {result['latency_ms_p99']} ms, max {result['latency_ms_max']} ms "
              f"over {result['keys']} keys ({result['keys_missed']} missed); goal p99 < 100 ms")
    return 0 if result["keys"] else 1


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--guests", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--json", action="store_true")
    sys.exit(main(p.parse_args()))
