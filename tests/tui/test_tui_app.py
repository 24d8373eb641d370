"""The TUI over real guests, driven by Pilot at 120x40: dashboard, console, lifecycle keys,
crash notification, filter and sort, the new-guest modal, help and the command palette."""
from __future__ import annotations

import re

import pytest

from hvtui.api import Boot, GuestSpec, State
from hvtui.tui.screens.console import ConsoleScreen
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import ConfirmScreen, HelpScreen, NewGuestScreen

from tuihelp import cell, history, notes, open_console, press, select, spy_input, text_of, wait_until

pytestmark = pytest.mark.kvm


def spec(image, name, **kw):
    return GuestSpec(image, name=name, memory_mib=16, **kw)


async def filter_for(pilot, app, text):
    await press(pilot, "slash")
    await wait_until(pilot, lambda: app.focused and app.focused.id == "filter", what="the filter box")
    await press(pilot, *text)


async def test_dashboard_shows_the_fleet(tui):
    async with tui([spec("counter", "c1"), spec("shell", "sh"), spec("hello", "hi")]) as (app, pilot):
        assert isinstance(app.screen, DashboardScreen)
        table = app.screen.table
        await wait_until(pilot, lambda: table.order == ["c1", "hi", "sh"], what="three rows")
        await wait_until(pilot, lambda: cell(app, "hi", "state") == "exited 0", what="hello to end")
        assert cell(app, "c1", "state") == "running"
        assert cell(app, "c1", "memory") == "16 MiB"
        await wait_until(pilot, lambda: cell(app, "c1", "top") == "io", what="exit stats")
        header = text_of(app.screen.query_one("#host-header"))
        assert "host CPU" in header and "2 running" in header and "1 stopped" in header
        assert re.search(r"host CPU +\d+% of \d+  memory ", header), header
        await select(pilot, app, "c1")
        detail = app.screen.query_one("#detail-console")
        await wait_until(pilot, lambda: "count 3" in text_of(detail), what="the console tail")
        assert "running" in text_of(app.screen.query_one("#detail-registers"))
        assert "0x03f8" in text_of(app.screen.query_one("#detail-ports"))


async def test_console_attach_type_detach(tui):
    async with tui([spec("shell", "sh"), spec("counter", "c1")]) as (app, pilot):
        await open_console(pilot, app, "sh", key="enter")
        term = app.screen.term
        await wait_until(pilot, lambda: "hvtui>" in term.text(), what="the prompt")
        await press(pilot, *"echo hi", "enter")
        await wait_until(pilot, lambda: "\nhi\n" in term.text() + "\n", what="the answer on screen")
        lines = term.text().splitlines()
        assert "hvtui> echo hi" in lines and "hi" in lines
        await press(pilot, "ctrl+right_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="detach")
        assert app.monitor.host.get("sh").attached == 0          # the console let go


async def test_console_prefix_keys(tui):
    async with tui([spec("shell", "sh"), spec("counter", "c1")]) as (app, pilot):
        sent = spy_input(app)
        await open_console(pilot, app, "sh")
        console = app.screen
        await press(pilot, "ctrl+a", "ctrl+a")          # the prefix twice reaches the guest
        await press(pilot, "up", "ctrl+c", "f2")
        console.term.feed(b"\x1b[?1h")                # the guest asks for application cursor keys
        await press(pilot, "up")
        await wait_until(pilot, lambda: len(sent) == 5, what="five keys sent")
        assert [d for _, d in sent] == [b"\x01", b"\x1b[A", b"\x03", b"\x1bOQ", b"\x1bOA"]
        assert {n for n, _ in sent} == {"sh"}
        await press(pilot, "ctrl+a", "n")              # next guest's console
        await wait_until(pilot, lambda: console.guest_name == "c1", what="switch to c1")
        await wait_until(pilot, lambda: "count" in console.term.text(), what="c1's output")
        await press(pilot, "ctrl+a", "N")
        await wait_until(pilot, lambda: console.guest_name == "sh", what="back to sh")
        await press(pilot, "ctrl+a", "p")              # pause from the console
        await wait_until(pilot, lambda: app.monitor.view("sh").state == State.PAUSED, what="pause")
        await press(pilot, "ctrl+a", "p")
        await wait_until(pilot, lambda: app.monitor.view("sh").state == State.RUNNING, what="resume")
        await press(pilot, "ctrl+a", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="detach")


async def test_pause_resume_changes_state_and_greys_keys(tui):
    async with tui([spec("counter", "c1"), spec("counter", "c2")]) as (app, pilot):
        await select(pilot, app, "c2")
        dash = app.screen
        assert dash.check_action("remove", ()) is None        # greyed out while running
        assert dash.check_action("pause", ()) is True
        await press(pilot, "p")
        await wait_until(pilot, lambda: cell(app, "c2", "state") == "paused", what="paused cell")
        assert app.monitor.view("c2").state == State.PAUSED
        assert cell(app, "c1", "state") == "running"
        regs = app.screen.query_one("#detail-registers")
        await wait_until(pilot, lambda: "RIP" in text_of(regs), what="registers of a paused guest")
        assert "EFER" in text_of(regs)
        await press(pilot, "p")
        await wait_until(pilot, lambda: cell(app, "c2", "state") == "running", what="running cell")


async def test_kill_asks_first_then_remove(tui):
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await select(pilot, app, "c1")
        await press(pilot, "k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back")
        assert app.monitor.view("c1").state == State.RUNNING
        await press(pilot, "k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await press(pilot, "y")
        await wait_until(pilot, lambda: cell(app, "c1", "state") == "killed", what="killed")
        assert app.monitor.view("c1").end.kind == "killed"
        dash = app.screen
        assert dash.check_action("kill", ()) is None and dash.check_action("remove", ()) is True
        await press(pilot, "x")
        await wait_until(pilot, lambda: app.monitor.guest("c1") is None, what="removal")
        await wait_until(pilot, lambda: dash.table.row_count == 0, what="the row to go")


async def test_crash_notifies_and_keeps_the_report(tui):
    async with tui([spec("counter", "c1"), spec("crash", "boom", boot=Boot(cmdline="ud"))]) as (app, pilot):
        await wait_until(pilot, lambda: any("boom crashed: triple fault" in n and n.endswith("boom.1.log)")
                                            for n in notes(app)),
                         what="the crash notification")
        await wait_until(pilot, lambda: cell(app, "boom", "state").startswith("crashed: triple fault"),
                         what="the red row")
        assert app.screen.table.get_cell("boom", "state").style == "bold red"
        await select(pilot, app, "boom")
        crash = app.screen.query_one("#detail-crash")
        await wait_until(pilot, lambda: crash.display and "triple fault" in text_of(crash),
                         what="the crash report in the detail panel")
        assert "rip=" in text_of(crash)
        assert "RIP" in text_of(app.screen.query_one("#detail-registers"))
        assert cell(app, "c1", "state") == "running"


async def test_filter_and_sort(tui):
    async with tui([spec("counter", "c1"), spec("shell", "sh"), spec("hello", "hi")]) as (app, pilot):
        table = app.screen.table
        await wait_until(pilot, lambda: cell(app, "hi", "state") == "exited 0", what="hello to end")
        await filter_for(pilot, app, "shell")
        await wait_until(pilot, lambda: table.order == ["sh"], what="the filter")
        await press(pilot, "enter")                         # keep the filter, back to the table
        await wait_until(pilot, lambda: table.has_focus, what="focus back on the table")
        assert table.order == ["sh"]
        await press(pilot, "escape")                        # clears it
        await wait_until(pilot, lambda: len(table.order) == 3, what="all rows back")
        await filter_for(pilot, app, "stopped")              # by state
        await press(pilot, "enter")
        await wait_until(pilot, lambda: table.order == ["hi"], what="the state filter")
        await press(pilot, "escape")
        await wait_until(pilot, lambda: len(table.order) == 3, what="all rows back")
        assert table.order == ["c1", "hi", "sh"]
        await press(pilot, "o")                             # sort by state: running before stopped
        assert table.sort_column == "state"
        await wait_until(pilot, lambda: table.order == ["c1", "sh", "hi"], what="sorted by state")
        await press(pilot, "O")                             # reversed
        await wait_until(pilot, lambda: table.order == ["hi", "sh", "c1"], what="reversed")
        assert "▼" in str(table.columns["state"].label)


async def test_new_guest_modal(tui):
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewGuestScreen), what="the modal")
        modal = app.screen
        modal.query_one("#image").value = "shell"
        modal.query_one("#memory").value = "x"
        modal.query_one("#create").press()
        error = modal.query_one("#new-guest-error")
        await wait_until(pilot, lambda: "not a whole number" in text_of(error), what="the form's error")
        modal.query_one("#memory").value = "24"
        modal.query_one("#name").value = "fresh"
        modal.query_one("#create").press()
        await pilot.pause(0.1)
        await wait_until(pilot, lambda: app.monitor.guest("fresh") is not None, what="the new guest")
        g = app.monitor.view("fresh")
        assert (g.spec.image, g.spec.memory_mib) == ("shell", 24)
        await wait_until(pilot, lambda: "fresh" in app.screen.table.order, what="its row")


async def test_new_guest_modal_boots_a_kernel_file_with_modules(tui, tmp_path):
    """A kernel path (completed from its folder) and a module: the guest is a Multiboot
    kernel, not a built-in image."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import kernels
    from hvtui.tui.screens.modals import PathSuggester
    (tmp_path / "mbkernel.bin").write_bytes(kernels.mb1_elf())
    (tmp_path / "mod.txt").write_bytes(b"module zero")
    assert await PathSuggester().get_suggestion(str(tmp_path / "mbk")) == str(tmp_path / "mbkernel.bin")
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewGuestScreen), what="the modal")
        modal = app.screen
        modal.query_one("#kernel").value = str(tmp_path / "nothere")
        modal.query_one("#create").press()
        error = modal.query_one("#new-guest-error")
        await wait_until(pilot, lambda: "no such file" in text_of(error), what="the form's error")
        modal.query_one("#kernel").value = str(tmp_path / "mbkernel.bin")
        modal.query_one("#initrd").value = f"{tmp_path / 'mod.txt'} arg"
        modal.query_one("#name").value = "mb"
        modal.query_one("#create").press()
        await wait_until(pilot, lambda: app.monitor.guest("mb") is not None, what="the new guest")
        g = app.monitor.view("mb")
        assert g.spec.boot.initrd == (f"{tmp_path / 'mod.txt'} arg",)
        await wait_until(pilot, lambda: app.monitor.view("mb").state == State.STOPPED, what="the kernel to end")
        g = app.monitor.view("mb")
        assert g.boot_protocol == "Multiboot 1" and g.end.exit_code == 42
        await wait_until(pilot, lambda: cell(app, "mb", "state") == "exited 42", what="its row to say how it ended")


async def test_help_and_palette_commands(tui):
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await press(pilot, "question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await press(pilot, "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="help closed")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "New guest: shell" in titles and "Pause: c1" in titles and "Kill: c1" in titles
        create = next(c for c in app.get_system_commands(app.screen) if c.title == "New guest: hello")
        create.callback()
        await wait_until(pilot, lambda: app.monitor.guest("hello-1") is not None, what="a guest from the palette")


async def test_config_keymap_and_prefix(tui):
    from hvtui.tui.config import Config
    config = Config(theme="nord", prefix_key="ctrl+b", keymap={"pause": "space"})
    async with tui([spec("shell", "sh")], config=config) as (app, pilot):
        assert app.theme == "nord"
        await select(pilot, app, "sh")
        await press(pilot, "space")                        # pause, moved by the keymap
        await wait_until(pilot, lambda: app.monitor.view("sh").state == State.PAUSED, what="pause")
        await press(pilot, "space")
        await wait_until(pilot, lambda: app.monitor.view("sh").state == State.RUNNING, what="resume")
        await press(pilot, "c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
        sent = spy_input(app)
        await press(pilot, "ctrl+a", "ctrl+b", "ctrl+b")   # ctrl+a is the guest's now
        await wait_until(pilot, lambda: len(sent) == 2, what="two keys sent")
        assert [d for _, d in sent] == [b"\x01", b"\x02"]
        await press(pilot, "ctrl+b", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="detach")


async def test_scrollback_search(tui):
    from hvtui.tui.screens.scrollback import ScrollbackScreen
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await wait_until(pilot, lambda: b"count 12\r\n" in history(app, "c1"), what="output")
        await open_console(pilot, app, "c1")
        await press(pilot, "ctrl+a", "left_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, ScrollbackScreen), what="scrollback")
        await wait_until(pilot, lambda: app.focused and app.focused.id == "scrollback-search", what="focus")
        await press(pilot, *"count 7", "enter")
        status = app.screen.query_one("#scrollback-status")
        await wait_until(pilot, lambda: "'count 7': line" in text_of(status),
                         what=f"the match ({app.screen.query_one('#scrollback-search').value!r} {text_of(status)!r})")
        area = app.screen.query_one("#scrollback-text")
        assert area.selected_text == "count 7"
        await press(pilot, "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="back on the console")


async def test_console_of_an_ended_guest(tui):
    async with tui([spec("hello", "hi"), spec("counter", "c1")]) as (app, pilot):
        await wait_until(pilot, lambda: cell(app, "hi", "state") == "exited 0", what="hello to end")
        await open_console(pilot, app, "hi")
        banner = history(app, "hi").decode(errors="replace").splitlines()[0].strip()
        await wait_until(pilot, lambda: banner in app.screen.term.text(), what="its history replayed")
        await press(pilot, "x")                          # it takes no input: said, not raised
        await wait_until(pilot, lambda: any("takes no input" in n for n in notes(app)), what="the warning")
        app.remove_guest("hi")                          # removed while its console is open
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back to the dashboard")
        await wait_until(pilot, lambda: app.screen.table.order == ["c1"], what="its row gone")


async def test_vcpu_threads_yield_to_the_ui(tui):
    import os

    def nices(name):
        return {os.getpriority(os.PRIO_PROCESS, tid) for tid in app.monitor.view(name).threads}
    async with tui([spec("shell", "sh"), spec("counter", "c1")]) as (app, pilot):
        from hvtui.host import can_lower_nice
        if not can_lower_nice(app.config.console_nice):
            pytest.skip("needs root or RLIMIT_NICE to give a console's guest its priority back")
        await wait_until(pilot, lambda: nices("sh") == {19} and nices("c1") == {19}, what="nice 19")
        await select(pilot, app, "sh")
        await press(pilot, "c")
        await wait_until(pilot, lambda: nices("sh") == {10}, what="the console's guest at nice 10")
        assert nices("c1") == {19}
        await press(pilot, "ctrl+right_square_bracket")
        await wait_until(pilot, lambda: nices("sh") == {19}, what="back to 19")


async def test_quit_asks_while_guests_live(tui):
    async with tui([spec("counter", "c1")]) as (app, pilot):
        await press(pilot, "q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="still running")
        assert app.is_running
        await press(pilot, "q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await press(pilot, "y")
        await wait_until(pilot, lambda: not app.is_running, what="the app to quit")


async def test_console_switches_to_the_virtio_console(tui):
    async with tui([spec("vconsole", "vc")]) as (app, pilot):
        await open_console(pilot, app, "vc")
        console = app.screen
        await wait_until(pilot, lambda: "vconsole: ready" in console.term.text(), what="COM1's banner")
        await press(pilot, "ctrl+a", "v")
        await wait_until(pilot, lambda: "hello from virtio-console" in console.term.text(), what="hvc0's")
        assert console.port_name == "hvc0" and "vconsole: ready" not in console.term.text()
        await press(pilot, *"ping")
        await wait_until(pilot, lambda: "ping" in console.term.text(), what="the echo on hvc0")
        await press(pilot, "ctrl+a", "v", "ctrl+a", "v")    # through the VGA screen
        await wait_until(pilot, lambda: console.port_name == "COM1", what="back on COM1")
        assert "vconsole: ready" in console.term.text() and "ping" not in console.term.text()
