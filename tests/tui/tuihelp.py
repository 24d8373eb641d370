"""Helpers of the TUI tests: wait for what the screen should come to show, read cells."""
from __future__ import annotations

from hvtui.tui.driving import press, select, wait_until  # noqa: F401  (re-exported)

SIZE = (120, 40)


def cell(app, guest: str, column: str) -> str:
    from textual.widgets.data_table import CellDoesNotExist
    try:
        return app.screen.table.get_cell(guest, column).plain
    except CellDoesNotExist:
        return ""


def notes(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def text_of(widget) -> str:
    """The plain text of what a Static shows (rich renderables rendered 200 columns wide)."""
    import io

    from rich.console import Console
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def open_console(pilot, app, name: str, key: str = "c"):
    """Select a guest, press key (`c` or Enter) and wait for its console screen; that screen."""
    from hvtui.tui.screens.console import ConsoleScreen
    await select(pilot, app, name)
    await press(pilot, key)
    await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
    return app.screen


def history(app, name: str) -> bytes:
    """What the guest wrote to its serial console (the embedded monitor's own record)."""
    return bytes(app.monitor.host.get(name).history)


def names(app) -> list[str]:
    return [g.name for g in app.monitor.guests()]


def spy_input(app) -> list[tuple[str, bytes]]:
    """Record every (guest, bytes) the app sends to a console, still sending it."""
    sent: list[tuple[str, bytes]] = []
    real = app.monitor.send_input

    async def spy(name, data, *rest):
        sent.append((name, data))
        return await real(name, data, *rest)
    app.monitor.send_input = spy
    return sent
