"""The gdb action of the TUI over a real guest and Debian's gdb: `g` starts the selected
guest's server and says the line to type; while gdb holds the guest the dashboard says
"debug" and shows its registers, and the other guest goes on; when gdb leaves, the guest
runs on."""
from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from hvtui.api import GuestSpec

from tuihelp import cell, history, notes, press, select, text_of, wait_until

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed (apt-get install gdb)")]


async def test_g_serves_gdb_and_the_dashboard_shows_the_debugger(tui):
    async with tui([GuestSpec("counter", name="c1", memory_mib=16),
                    GuestSpec("counter", name="c2", memory_mib=16)]) as (app, pilot):
        await select(pilot, app, "c1")
        await press(pilot, "g")
        await wait_until(pilot, lambda: any("target remote 127.0.0.1:" in n for n in notes(app)),
                         what="the target remote line")
        line = next(n for n in notes(app) if "target remote" in n)
        target = re.search(r"target remote (127\.0\.0\.1:\d+)", line).group(1)
        gdb = await asyncio.create_subprocess_exec(
            "gdb", "-batch", "-nx", "-ex", f"target remote {target}", "-ex", "python import time; time.sleep(4)",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await wait_until(pilot, lambda: cell(app, "c1", "state") == "debug", what="the debug state")
            title = text_of(app.screen.query_one("#detail-title"))
            assert f"gdb: target remote {target}" in title and "stopped by the debugger" in title, title
            await wait_until(pilot, lambda: "RIP 0x" in text_of(app.screen.query_one("#detail-registers")),
                             what="the registers of the stopped guest")
            assert any("attached to c1" in n for n in notes(app))
            before, other = len(history(app, "c1")), len(history(app, "c2"))
            await wait_until(pilot, lambda: len(history(app, "c2")) > other + 20,
                             what="the other guest counting on")
            assert len(history(app, "c1")) == before        # held: it prints nothing
            assert cell(app, "c2", "state") == "running"
            out, _ = await asyncio.wait_for(gdb.communicate(), 30)
        finally:
            if gdb.returncode is None:
                gdb.kill()
                await gdb.wait()
        assert b"Remote target" in out or b"in hv_" in out, out
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "running", what="running again")
        await wait_until(pilot, lambda: any("left c1; it runs on" in n for n in notes(app)), what="the leave note")
        count = len(history(app, "c1"))
        await wait_until(pilot, lambda: len(history(app, "c1")) > count, what="counting again")
