"""The TUI's side of a guest's gdb server (which runs in the monitor): start one and say
the `target remote` line to type, show when a debugger holds a guest, and turn what the
server refuses a debugger into notifications."""
from __future__ import annotations

from rich.text import Text

from hvtui import api
from hvtui.tui import format as fmt

DEBUG_STYLE = "bold magenta"


async def start(app, name: str) -> None:
    """The guest's gdb server (started if it has none) and a notification with its line."""
    line = await app.monitor.gdb(name)
    app.notify(f"in gdb, type:  {line}", title=f"gdb server for {name}", timeout=30)


def state_text(guest: api.GuestView) -> Text:
    """The state column: "debug" while a debugger holds the guest, else its status."""
    if guest.debug_stopped:
        return Text("debug", style=DEBUG_STYLE)
    return fmt.status_text(guest)


def status(guest: api.GuestView) -> Text | None:
    """One line for the detail panel: the server, its client and what stopped the guest."""
    if not guest.gdb:
        return None
    line = Text(f"gdb: {guest.gdb}", style="magenta")
    line.append(f"  ({guest.gdb_client} attached)" if guest.gdb_client else "  (no debugger attached)")
    if guest.debug_stopped:
        line.append("  stopped by the debugger", style=DEBUG_STYLE)
        if guest.debug_stop:
            line.append(f": {guest.debug_stop}")
    return line


def on_event(app, event: api.Event) -> None:
    """Debugger events: refusals warn, a debugger coming and going is noted."""
    if not isinstance(event, api.DebuggerEvent):
        return
    name = event.guest.name
    if event.what == "refused":
        app.notify(f"{name}: refused {event.detail}", title="Debugger", severity="warning", timeout=12)
    elif event.what == "attached":
        app.notify(f"{event.detail} attached to {name}", title="Debugger", timeout=5)
    elif event.what == "detached":
        app.notify(f"{event.detail} left {name}; it runs on", title="Debugger", timeout=5)
