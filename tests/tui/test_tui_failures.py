"""What used to end the TUI and every guest with it (issue 12), and what a new user trips
over: an unexpected error in an action, a full disk, an edited snapshot, Ctrl+Q in a
console, keys that belong to the guest, and an 80x24 terminal."""
from __future__ import annotations

import json

import pytest

import snaptools
from hvtui.api import GuestSpec, State
from hvtui.tui.config import Config
from hvtui.tui.screens.console import ConsoleScreen
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import ConfirmScreen, SnapshotScreen

from tuihelp import history, names, notes, open_console, press, select, spy_input, wait_until

pytestmark = pytest.mark.kvm


def spec(image, name, **kw):
    return GuestSpec(image, name=name, memory_mib=16, **kw)


def running(app) -> list[str]:
    return sorted(g.name for g in app.monitor.guests() if g.state == State.RUNNING)


async def test_an_unexpected_error_is_a_notification_and_a_log_record(tui, tmp_path):
    """A MemoryError (the old full-disk snapshot) or any other bug in what a key starts:
    the app and every guest go on, the user is told, the traceback is in hvtui.log."""
    async with tui([spec("counter", "c1"), spec("shell", "sh")]) as (app, pilot):
        await wait_until(pilot, lambda: running(app) == ["c1", "sh"], what="two running guests")

        async def broken_pause(name):
            raise MemoryError("out of memory in a worker")
        app.monitor.pause = broken_pause                    # a worker (the lifecycle group)
        await select(pilot, app, "c1")
        await press(pilot, "p")
        await wait_until(pilot, lambda: any("MemoryError: out of memory in a worker" in n for n in notes(app)),
                         what="the worker's notification")

        def broken_open(name):
            raise RuntimeError("a bug behind a key")
        app.open_console = broken_open                   # an action, run synchronously
        await press(pilot, "c")
        await wait_until(pilot, lambda: any("RuntimeError: a bug behind a key" in n for n in notes(app)),
                         what="the action's notification")
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Console: sh")
        command.callback()                               # a palette command
        await wait_until(pilot, lambda: sum("a bug behind a key" in n for n in notes(app)) == 2,
                         what="the palette command's notification")
        assert app.is_running and isinstance(app.screen, DashboardScreen)
        assert running(app) == ["c1", "sh"]
        log = (tmp_path / "logs" / "hvtui.log").read_text()
        assert "Traceback" in log and "MemoryError: out of memory in a worker" in log
        assert "RuntimeError: a bug behind a key" in log


async def test_snapshot_to_a_full_disk_is_a_notification(tui, full_disk):
    snaptools.fill(full_disk, 16 << 10)
    async with tui([spec("counter", "c1"), spec("shell", "sh")],
                   config=Config(snapshot_dir=full_disk)) as (app, pilot):
        await wait_until(pilot, lambda: running(app) == ["c1", "sh"], what="two running guests")
        await select(pilot, app, "sh")
        await press(pilot, "S")
        await wait_until(pilot, lambda: isinstance(app.screen, SnapshotScreen), what="the snapshot modal")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: any("no space left on device" in n for n in notes(app)),
                         what="the full-disk notification")
        note = next(n for n in notes(app) if "no space left on device" in n)
        assert note.startswith("Could not snapshot sh: ") and "\n" not in note
        assert app.is_running and running(app) == ["c1", "sh"]
        assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


async def test_an_edited_snapshot_is_a_notification(tui, tmp_path):
    async with tui([spec("counter", "c1")], config=Config(snapshot_dir=tmp_path / "snaps")) as (app, pilot):
        await wait_until(pilot, lambda: b"count 2\r\n" in history(app, "c1"), what="counting")
        good = tmp_path / "good.hvsnap"
        await app.monitor.snapshot("c1", str(good))
        for i, edit in enumerate([lambda s: json.dumps(s).replace('"cmdline": ""', '"cmdline": ' + "[" * 20000
                                                                  + "]" * 20000),
                                  lambda s: s["config"].__setitem__("memory_mib", "16"),
                                  lambda s: s["config"].__setitem__("name", 5)]):
            bad = tmp_path / f"bad{i}.hvsnap"
            state = snaptools.state_of(good)
            result = edit(state)
            snaptools.rebuild(good, bad, (result if isinstance(result, str) else json.dumps(state)).encode())
            app.restore_snapshot(bad)
            await wait_until(pilot, lambda: any(n.startswith(f"Could not restore bad{i}.hvsnap: ") for n in notes(app)),
                             what=f"the notification for edit {i}")
        assert app.is_running and names(app) == ["c1"] and running(app) == ["c1"]


async def test_ctrl_q_asks_on_the_dashboard_and_is_the_guests_in_a_console(tui):
    async with tui([spec("shell", "sh"), spec("counter", "c1")]) as (app, pilot):
        sent = spy_input(app)
        await open_console(pilot, app, "sh")
        await press(pilot, "ctrl+q")
        await wait_until(pilot, lambda: sent, what="the key sent")
        assert [d for _, d in sent] == [b"\x11"] and isinstance(app.screen, ConsoleScreen) and app.is_running
        assert running(app) == ["c1", "sh"]
        await press(pilot, "ctrl+right_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        await press(pilot, "ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="no")
        assert app.is_running and running(app) == ["c1", "sh"]


async def test_every_key_but_detach_and_prefix_goes_to_the_guest(tui):
    async with tui([spec("shell", "sh")]) as (app, pilot):
        sent = spy_input(app)
        app.open_console("sh")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
        letters = [c for c in "bcdefgjklnopqrstuvwxyz"]          # not a (prefix); h i m are keys of their own
        await press(pilot, *[f"ctrl+{c}" for c in letters], "tab", "escape", "ctrl+backslash", "f1", "q")
        want = [bytes([ord(c) - 96]) for c in letters] + [b"\t", b"\x1b", b"\x1c", b"\x1bOP", b"q"]
        await wait_until(pilot, lambda: len(sent) == len(want), what="every key sent")
        assert [d for _, d in sent] == want
        assert isinstance(app.screen, ConsoleScreen) and app.is_running


async def test_the_console_fits_80x24_and_follows_the_cursor(tui):
    async with tui([spec("shell", "sh")], size=(80, 24)) as (app, pilot):
        app.open_console("sh")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
        console, term = app.screen, app.screen.term
        await wait_until(pilot, lambda: "hvtui>" in term.text(), what="the prompt")
        for _ in range(4):                                  # fill the guest's 24 lines and scroll
            await press(pilot, *"help", "enter")
            await pilot.pause(0.3)
        await press(pilot, *"echo typing")
        await wait_until(pilot, lambda: "hvtui> echo typing" in term.text(), what="the typed line")
        await pilot.pause(0.2)
        region = term.region
        assert region.x >= 0 and region.y >= 1 and region.right <= 80 and region.bottom <= 23
        cursor_row = term.pyte_screen.cursor.y - term.top
        assert 0 <= cursor_row < region.height, (term.top, term.pyte_screen.cursor.y, region)
        shown = "".join(s.text for s in term.render_line(cursor_row))
        assert shown.startswith("hvtui> echo typing"), shown
        footer = console.query_one("Footer").region
        assert footer.bottom == 24 and not footer.overlaps(region)


async def test_the_dashboard_fits_80x24(tui):
    async with tui([spec("counter", "c1"), spec("shell", "sh")], size=(80, 24)) as (app, pilot):
        screen = app.screen
        await wait_until(pilot, lambda: screen.table.order == ["c1", "sh"], what="the rows")
        await pilot.pause(0.6)
        table = screen.table
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        assert widths <= table.content_region.width, (widths, table.content_region)
        assert [str(c.label).split()[0] for c in table.columns.values()] == [
            "Name", "State", "vCPUs", "Memory", "Exits/s", "Top", "CPU", "Uptime"]
        from tuihelp import text_of
        header = text_of(screen.query_one("#host-header")).strip()
        assert len(header) <= 78 and "guests 2: 2 running" in header, header
        footer = screen.query_one("Footer")
        keys = [k for k in footer.query("FooterKey")]
        assert all(k.region.right <= 80 for k in keys) and {"q", "question_mark", "c"} <= {k.key for k in keys}
        assert footer.region.bottom == 24


async def test_restoring_a_snapshot_with_a_disk_asks_first(tui, tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    async with tui([spec("counter", "c1", disk=str(disk))]) as (app, pilot):
        await wait_until(pilot, lambda: b"count 2\r\n" in history(app, "c1"), what="counting")
        path = tmp_path / "d.hvsnap"
        await app.monitor.snapshot("c1", str(path))
        app.restore_snapshot(path, "back")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert f"had the disk {disk}: restore opens it read-write" in app.screen.question
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="no")
        await pilot.pause(0.3)
        assert names(app) == ["c1"]
        app.restore_snapshot(path, "back")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await press(pilot, "y")
        await wait_until(pilot, lambda: app.monitor.guest("back") is not None, what="the restored guest")
        app.clone_guest("c1", 2, "cl")                   # clones keep the disk, read-only: one writer
        await wait_until(pilot, lambda: any(f"they read its disk {disk} read-only" in n for n in notes(app)),
                         what="the clone note")
        assert sorted(names(app)) == ["back", "c1", "cl-1", "cl-2"]
        assert {app.monitor.view(n).spec.disk_readonly for n in ("cl-1", "cl-2")} == {True}
        assert app.monitor.view("c1").spec.disk_readonly is False
