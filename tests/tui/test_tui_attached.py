"""The TUI as a client of the monitor's socket (Pilot, 120x40): it shows the daemon's
guests, acts on them through the socket, quits without ending them, and stops the
monitor (kill-server) only after a confirmation."""
from __future__ import annotations

import pytest

from hvtui.api import GuestSpec
from hvtui.client import RemoteMonitor
from hvtui.server import Server
from hvtui.tui.app import HvtuiApp
from hvtui.tui.config import Config
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import ConfirmScreen

from tuihelp import SIZE, cell, open_console, press, select, wait_until

pytestmark = pytest.mark.kvm


@pytest.fixture
async def server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    srv = Server(log_dir=tmp_path / "logs", vcpu_nice=0, sample_interval=0.2)
    assert srv.take_lock()
    await srv.listen()
    await srv.host.create(GuestSpec("counter", name="c1", memory_mib=16))
    await srv.host.create(GuestSpec("shell", name="sh", memory_mib=16))
    yield srv
    await srv.close()


def attached_app(srv) -> HvtuiApp:
    return HvtuiApp(specs=(), config=Config(), monitor=RemoteMonitor(srv.socket_path))


async def test_the_tui_drives_the_daemon_and_quits_without_ending_it(server):
    app = attached_app(server)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "running", what="c1 over the socket")
        await select(pilot, app, "c1")
        await press(pilot, "p")
        await wait_until(pilot, lambda: server.host.get("c1").state.value == "paused", what="the pause in the monitor")
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "paused", what="the paused cell")
        await press(pilot, "p")
        await open_console(pilot, app, "sh", key="enter")
        term = app.screen.term
        await wait_until(pilot, lambda: "hvtui>" in term.text(), what="the replayed prompt")
        await press(pilot, *"echo over the socket", "enter")
        await wait_until(pilot, lambda: "\nover the socket" in term.text(), what="the answer")
        assert server.host.get("sh").attached == 1
        await press(pilot, "ctrl+right_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="detach")
        await wait_until(pilot, lambda: server.host.get("sh").attached == 0, what="the console let go")
        await press(pilot, "q")                         # no question: the guests go on
        await wait_until(pilot, lambda: not app.is_running, what="the app to quit")
    assert {g.name: g.state.value for g in server.host.guests.values()} == {"c1": "running", "sh": "running"}
    assert not server.stop.is_set()


async def test_stop_monitor_asks_first(server):
    app = attached_app(server)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "running", what="c1")
        await press(pilot, "Q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back")
        assert not server.stop.is_set()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Stop the monitor" in titles and "Start: c1" not in titles and "Reset: c1" in titles
        await press(pilot, "Q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await press(pilot, "y")
        await wait_until(pilot, lambda: server.stop.is_set(), what="the monitor to be told to stop")
        await server.close()
        await wait_until(pilot, lambda: not app.is_running, what="the app to end with the monitor")


async def test_a_bug_in_a_tui_action_is_a_notification_and_a_log_line(server, tmp_path):
    """An exception in a worker (a bug, not an HvError) becomes a notification; the
    traceback goes to the monitor's log; the app and the guests go on."""
    import logging
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("hvtui").addHandler(handler)
    app = attached_app(server)
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: cell(app, "c1", "state") == "running", what="c1")

            async def broken(name):
                raise ZeroDivisionError("a bug")
            app.monitor.pause = broken
            await select(pilot, app, "c1")
            await press(pilot, "p")
            await wait_until(pilot, lambda: any("ZeroDivisionError: a bug" in n.message for n in app._notifications),
                             what="the notification")
            await wait_until(pilot, lambda: any("ZeroDivisionError" in r.getMessage() for r in records),
                             what="the traceback in the monitor's log")
            assert app.is_running and server.host.get("c1").state.value == "running"
    finally:
        logging.getLogger("hvtui").removeHandler(handler)
