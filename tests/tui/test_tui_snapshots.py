"""Snapshot, restore and clone from the TUI over real guests, driven by Pilot at 120x40: the
S / R / C keys, their modals (the restore file picker), the notifications, the console's
prefix S, and the keys greyed out for a guest that is not live."""
from __future__ import annotations

import re

import pytest

from hvtui.api import GuestSpec, State
from hvtui.tui.config import Config
from hvtui.tui.screens.console import ConsoleScreen
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import CloneScreen, RestoreScreen, SnapshotScreen

from tuihelp import cell, history, names, notes, press, select, text_of, wait_until

pytestmark = pytest.mark.kvm

COUNT = re.compile(rb"count (\d+)\r\n")


def spec(image, name, **kw):
    return GuestSpec(image, name=name, memory_mib=16, **kw)


def snap_config(tmp_path) -> Config:
    return Config(snapshot_dir=tmp_path / "snaps")


async def on_screen(pilot, app, kind):
    """The current screen once it is a kind, mounted, with the focus its on_mount gave: Textual
    makes a pushed screen current before it composes and mounts, and focus() takes effect one
    message later on the app's queue; the modals' fields and focus are read at once after."""
    await wait_until(pilot, lambda: isinstance(app.screen, kind) and app.screen.is_mounted, what=kind.__name__)
    await pilot.pause()          # the messages already queued (the focus among them) processed
    return app.screen


def snapshots(tmp_path):
    return sorted((tmp_path / "snaps").glob("*.hvsnap"))


async def snapshot_from_dashboard(pilot, app, tmp_path, name):
    """S on the dashboard, Enter on the prefilled path: the file saved (its path)."""
    await select(pilot, app, name)
    await press(pilot, "S")
    modal = await on_screen(pilot, app, SnapshotScreen)
    path = modal.query_one("#snapshot-path").value
    assert path.startswith(str(tmp_path / "snaps" / f"{name}-")) and path.endswith(".hvsnap")
    await press(pilot, "enter")
    await wait_until(pilot, lambda: any(f"snapshot of {name} saved to {path} (" in n for n in notes(app)),
                     what="the snapshot notification")
    return path


async def test_snapshot_then_restore_through_the_picker(tui, tmp_path):
    async with tui([spec("counter", "c1")], config=snap_config(tmp_path)) as (app, pilot):
        await wait_until(pilot, lambda: b"count 5\r\n" in history(app, "c1"), what="counting")
        path = await snapshot_from_dashboard(pilot, app, tmp_path, "c1")
        assert [str(p) for p in snapshots(tmp_path)] == [path]
        note = next(n for n in notes(app) if "snapshot of c1" in n)
        assert re.search(r"\(\d+\.\d MiB, \d+ ms\)$", note), note
        assert app.monitor.view("c1").state == State.RUNNING           # a live snapshot goes on
        saved = [int(m) for m in COUNT.findall(bytes(history(app, "c1")))]

        await press(pilot, "R")
        picker = await on_screen(pilot, app, RestoreScreen)
        files = picker.query_one("#restore-files")
        assert files.row_count == 1
        assert files.get_row_at(0)[0] == path.rsplit("/", 1)[1]     # name, size, time
        assert "KiB" in str(files.get_row_at(0)[1]) or "MiB" in str(files.get_row_at(0)[1])
        assert picker.query_one("#restore-path").value == path
        picker.query_one("#restore-name").value = "back"
        assert app.focused is files                                 # Enter on the file restores it
        await press(pilot, "enter")
        await on_screen(pilot, app, DashboardScreen)
        await wait_until(pilot, lambda: app.monitor.guest("back") is not None, what="the restored guest")
        await wait_until(pilot, lambda: app.screen.table.selected == "back", what="its row selected")
        await wait_until(pilot, lambda: any(n.endswith(f"back restored from {path}") for n in notes(app)),
                         what="the restore notification")
        back = app.monitor.host.get("back")
        await wait_until(pilot, lambda: len(COUNT.findall(bytes(back.history))) >= 3, what="it counting")
        counts = [int(m) for m in COUNT.findall(bytes(back.history))]
        assert counts[0] > 0, counts                                 # it continues, not restarts
        assert counts[0] <= saved[-1] + 1 and counts == list(range(counts[0], counts[0] + len(counts)))
        assert cell(app, "back", "state") == "running"


async def test_restore_of_a_corrupt_file_creates_nothing(tui, tmp_path):
    async with tui([spec("counter", "c1")], config=snap_config(tmp_path)) as (app, pilot):
        await wait_until(pilot, lambda: b"count 2\r\n" in history(app, "c1"), what="counting")
        good = await snapshot_from_dashboard(pilot, app, tmp_path, "c1")
        bad = tmp_path / "bad.hvsnap"
        data = bytearray(open(good, "rb").read())
        data[4096 + 100] ^= 0x40    # a flipped byte in the state (a bad memory page restores, then crashes on start)
        bad.write_bytes(bytes(data))
        await press(pilot, "R")
        picker = await on_screen(pilot, app, RestoreScreen)
        picker.query_one("#restore-path").value = str(bad)   # a file outside the snapshot dir
        picker.query_one("#restore-path").focus()
        await press(pilot, "enter")
        await wait_until(pilot, lambda: any(n.startswith("Could not restore bad.hvsnap: ") for n in notes(app)),
                         what="the error notification")
        error = next(n for n in notes(app) if n.startswith("Could not restore"))
        assert "\n" not in error and str(bad) in error
        assert isinstance(app.screen, DashboardScreen)
        assert names(app) == ["c1"] and app.screen.table.order == ["c1"]
        assert bad.read_bytes() == bytes(data)             # untouched


async def test_clone_a_shell_three_times(tui, tmp_path):
    async with tui([spec("shell", "sh")], config=snap_config(tmp_path)) as (app, pilot):
        await wait_until(pilot, lambda: b"hvtui>" in history(app, "sh"), what="the prompt")
        await select(pilot, app, "sh")
        await press(pilot, "C")
        modal = await on_screen(pilot, app, CloneScreen)
        modal.query_one("#clone-count").value = "17"
        modal.query_one("#clone-button").press()
        await wait_until(pilot, lambda: "between 1 and 16" in text_of(modal.query_one("#clone-error")),
                         what="the form's error")
        modal.query_one("#clone-count").value = "3"
        modal.query_one("#clone-prefix").value = "twin"
        modal.query_one("#clone-button").press()
        await on_screen(pilot, app, DashboardScreen)
        names = ["twin-1", "twin-2", "twin-3"]
        await wait_until(pilot, lambda: all(n in app.screen.table.order for n in names), what="three rows")
        await wait_until(pilot, lambda: any("sh cloned 3 time(s): twin-1, twin-2, twin-3" in n for n in notes(app)),
                         what="the clone notification")
        assert len(snapshots(tmp_path)) == 1
        for n in names:
            app.monitor.host.send_input(n, f"echo I am {n}\r".encode())
        for n in names:
            await wait_until(pilot, lambda n=n: f"\r\nI am {n}\r\n".encode() in history(app, n),
                             what=f"{n}'s answer")
        for n in names:                                     # each console has its own answer only
            others = [o for o in names if o != n]
            assert not any(f"I am {o}".encode() in history(app, n) for o in others)
        assert b"I am" not in history(app, "sh")
        assert app.screen.table.order == ["sh", *names]


async def test_snapshot_keys_greyed_out_for_a_stopped_guest(tui, tmp_path):
    async with tui([spec("hello", "hi"), spec("counter", "c1")], config=snap_config(tmp_path)) as (app, pilot):
        await wait_until(pilot, lambda: cell(app, "hi", "state") == "exited 0", what="hello to end")
        dash = app.screen
        await select(pilot, app, "hi")
        assert dash.check_action("snapshot", ()) is None
        assert dash.check_action("clone", ()) is None
        assert dash.check_action("restore", ()) is True      # restore needs no live guest
        await press(pilot, "S", "C")                          # greyed out: nothing happens
        await pilot.pause(0.2)
        assert isinstance(app.screen, DashboardScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Restore a snapshot" in titles and "Snapshot: c1" in titles and "Clone: c1" in titles
        assert "Snapshot: hi" not in titles and "Clone: hi" not in titles
        await select(pilot, app, "c1")
        assert dash.check_action("snapshot", ()) is True and dash.check_action("clone", ()) is True
        await press(pilot, "p")                               # paused: still allowed
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "paused", what="paused")
        assert dash.check_action("snapshot", ()) is True


async def test_console_prefix_snapshot(tui, tmp_path):
    async with tui([spec("counter", "c1")], config=snap_config(tmp_path)) as (app, pilot):
        await select(pilot, app, "c1")
        await press(pilot, "c")
        await on_screen(pilot, app, ConsoleScreen)
        await press(pilot, "ctrl+a", "S")
        await wait_until(pilot, lambda: any("snapshot of c1 saved to " in n for n in notes(app)),
                         what="the snapshot notification")
        assert isinstance(app.screen, ConsoleScreen)         # still attached
        files = snapshots(tmp_path)
        assert len(files) == 1 and files[0].name.startswith("c1-")
        assert re.fullmatch(r"c1-\d{8}-\d{6}\.hvsnap", files[0].name)
        assert app.monitor.view("c1").state == State.RUNNING
