"""The TUI's side of the gdb server: start one for a guest (on the first free port from
1234) and say the `target remote` line to type, show when a debugger holds a guest, and
turn what the server refuses a debugger into notifications."""
from __future__ import annotations

from rich.text import Text

from hvtui.errors import ConfigError
from hvtui.tui import format as fmt

FIRST_PORT = 1234
PORTS_TRIED = 32
DEBUG_STYLE = "bold magenta"


async def start(app, name: str) -> None:
    """The guest's gdb server (started if it has none) and a notification with its line."""
    host = app.host
    server = host.gdb.get(name)
    for port in range(FIRST_PORT, FIRST_PORT + PORTS_TRIED):
        if server is not None:
            break
        try:
            server = await host.serve_gdb(name, ("127.0.0.1", port))
        except ConfigError as e:
            if "in use" not in str(e):
                raise
    if server is None:
        server = await host.serve_gdb(name, ("127.0.0.1", 0))
    app.notify(f"in gdb, type:  {server.target_remote}", title=f"gdb server for {name}", timeout=30)


def state_text(guest) -> Text:
    """The state column: "debug" while a debugger holds the guest, else its lifecycle state."""
    if guest.state.live and guest.machine.debug_stopped:
        return Text("debug", style=DEBUG_STYLE)
    return fmt.state_text(guest.state)


def status(guest, host) -> Text | None:
    """One line for the detail panel: the server, its client and what stopped the guest."""
    server = host.gdb.get(guest.name)
    if server is None:
        return None
    line = Text(f"gdb: {server.target_remote}", style="magenta")
    line.append(f"  ({server.client} attached)" if server.client else "  (no debugger attached)")
    if guest.state.live and guest.machine.debug_stopped:
        line.append("  stopped by the debugger", style=DEBUG_STYLE)
        event = server.debug.take_event()
        if event is not None:
            line.append(f": vCPU {event.vcpu}, {event.reason}" + (f" at {event.addr:#x}" if event.addr else ""))
    return line


def on_event(app, event) -> None:
    """Host "debug" events: refusals warn, a debugger coming and going is noted."""
    if event.kind != "debug":
        return
    info = event.info
    if "refused" in info:
        app.notify(f"{event.guest}: refused {info['refused']}", title="Debugger", severity="warning", timeout=12)
    elif "attached" in info:
        app.notify(f"{info['attached']} attached to {event.guest}", title="Debugger", timeout=5)
    elif "detached" in info:
        app.notify(f"{info['detached']} left {event.guest}; it runs on", title="Debugger", timeout=5)
