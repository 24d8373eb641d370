"""The console screen: one guest's serial console in a Terminal widget, or its VGA text
screen (a VgaScreen polled at up to 30 Hz) with its PS/2 keyboard behind it.

Every key goes to the guest as bytes, except two: the detach key (Ctrl-] by default) and
the prefix key (Ctrl-A by default). After the prefix: the prefix again sends it to the
guest; d detaches; p pauses or resumes; s stops; k kills (after a confirmation); S saves
a live snapshot to the snapshot directory (the result comes as a notification); n / N
switch to the next / previous guest's console; v cycles the guest's serial console (COM1),
its virtio-console (hvc0) and its VGA screen; w saves the VGA screen as text and SVG;
[ opens the searchable scrollback; ? help. On the VGA screen keys become PS/2 make and
break codes (hvtui.ps2keys), modifiers pressed and released around them. A console opens
on the VGA screen for a guest that drew there and wrote nothing to COM1 or hvc0.
Both keys come from the config file ([console] detach, prefix).
"""
from __future__ import annotations

import asyncio

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.containers import Center, Container, Middle
from textual.screen import Screen
from textual.widgets import Footer, Static

from hvtui import api, ps2keys
from hvtui.api import HVC, SERIAL, VGA
from hvtui.errors import HvError
from hvtui.tui import format as fmt
from hvtui.tui.widgets.terminal import Terminal, key_to_bytes
from hvtui.tui.widgets.vga import VgaScreen

VGA_POLL_S = 1 / 30           # the VGA screen is read (4000 bytes compared) at most this often
CONSOLES = (SERIAL, HVC, VGA)  # the order prefix+v cycles through
PORT_NAMES = {SERIAL: "COM1", HVC: "hvc0", VGA: "VGA"}

REPLAY_BYTES = 16 * 1024      # console history replayed on attach: a screenful with room to
                              # spare (pyte takes ~1.7 ms per KiB here; the rest is in scrollback)

PREFIX_COMMANDS = [
    ("prefix", "send the prefix key itself to the guest"),
    ("d", "detach (back to the dashboard)"),
    ("p", "pause / resume the guest"),
    ("s", "stop the guest"),
    ("k", "kill the guest (asks first)"),
    ("S", "snapshot the guest to the snapshot directory"),
    ("n / N", "next / previous guest's console"),
    ("v", "next console: COM1 -> virtio-console (hvc0) -> VGA screen"),
    ("w", "save the VGA screen as text and SVG"),
    ("[", "scrollback with search"),
    ("?", "help"),
]


def key_label(key: str) -> str:
    """ctrl+right_square_bracket -> ^], ctrl+a -> ^A."""
    if key == "ctrl+right_square_bracket":
        return "^]"
    if key.startswith("ctrl+") and len(key) == 6:
        return "^" + key[5].upper()
    return key


class ConsoleScreen(Screen):
    BINDINGS = [
        Binding("ctrl+right_square_bracket", "detach", "Detach", id="console.detach", key_display="^]"),
        Binding("ctrl+a", "prefix", "Prefix", id="console.prefix", key_display="^A"),
    ]

    def __init__(self, guest: str, **kwargs):
        super().__init__(**kwargs)
        self.guest_name = guest
        self.console = SERIAL
        self.prefix_armed = False
        self._unsubscribe = None
        cfg = self.app.config
        self.detach_key, self.prefix_key = cfg.detach_key, cfg.prefix_key
        self.term = Terminal(cfg.columns, cfg.lines, id="terminal")
        self.vga = VgaScreen(id="vga")
        self._vga_timer = None
        self._vga_reading = False
        self._tasks: set[asyncio.Task] = set()

    def compose(self):
        yield Static(id="console-title")
        with Middle(id="console-body"):
            with Center():
                with Container(id="terminal-frame"):
                    yield self.term
                    yield self.vga
        yield Footer()

    def on_mount(self) -> None:
        self.vga.display = False
        self._vga_timer = self.set_interval(VGA_POLL_S, self.poll_vga, pause=True)
        self.attach(self.guest_name, self._preferred(self.guest_name))
        self.fit_terminal()

    def _preferred(self, name: str) -> str:
        guest = self.app.monitor.guest(name)
        return guest.preferred_console if guest is not None else SERIAL

    def on_resize(self) -> None:
        self.fit_terminal()

    def fit_terminal(self) -> None:
        """Give the guest's screen the room there is: without its frame when the frame would
        not fit (80x24), and a window that follows the cursor when it is still too big."""
        width, height = self.size
        rows = height - 2                      # the title line and the footer
        tight = width < self.term.columns + 2 or rows < self.term.lines + 2
        self.set_class(tight, "-tight")
        frame = 0 if tight else 2
        self.term.styles.max_height = max(1, rows - frame)
        self.term.styles.max_width = max(1, width - frame)

    def on_unmount(self) -> None:
        self._detach_stream()

    # ---- wiring to the host ----
    def _detach_stream(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self.app.set_console_guest(None)

    def attach(self, name: str, console: str = SERIAL) -> None:
        """Show a console of guest name: replay its recent history, then follow it."""
        self._detach_stream()
        self.guest_name, self.console = name, console
        vga = console == VGA
        self.term.display, self.vga.display = not vga, vga
        (self.vga if vga else self.term).focus()
        if vga:
            self._vga_timer.resume()
            self.poll_vga()
            self.app.set_console_guest(name)
            self._unsubscribe = lambda: None
            self.update_title()
            return
        self._vga_timer.pause()
        self.term.reset()
        first = [True]

        def feed(data: bytes) -> None:
            if first[0]:
                first[0] = False
                if len(data) >= REPLAY_BYTES and b"\n" in data:
                    data = data[data.index(b"\n") + 1:]    # start on a line, not inside an escape
            self.term.feed(data)
        self._unsubscribe = self.app.monitor.watch_console(name, console, feed, replay=REPLAY_BYTES, attach=True)
        self.app.set_console_guest(name)
        self.update_title()

    def poll_vga(self) -> None:
        """Show the guest's VGA screen as it is now (rows that changed are repainted); one
        read in flight at a time, so a slow monitor is polled less, not queued."""
        if self.console != VGA or self._vga_reading or self.app.monitor.guest(self.guest_name) is None:
            return
        self._vga_reading = True
        name = self.guest_name

        async def read():
            try:
                screen = await self.app.monitor.screen(name)
            except HvError:
                return
            finally:
                self._vga_reading = False
            if self.console == VGA and self.guest_name == name and self.is_mounted:
                self.vga.show(screen)
        task = asyncio.get_running_loop().create_task(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def monitor_event(self, event: api.Event) -> None:
        if isinstance(event, api.GuestRemoved) and event.name == self.guest_name:
            self._unsubscribe = None
            self.app.notify(f"{event.name} was removed", severity="warning")
            self.dismiss_console()
        elif isinstance(event, api.GuestChanged) and event.guest.name == self.guest_name:
            self.update_title()
        elif isinstance(event, api.Resync) and self.is_mounted:
            if self.app.monitor.guest(self.guest_name) is None:
                self.dismiss_console()
            else:
                self.attach(self.guest_name, self.console)     # bytes may have been lost: redraw

    def update_title(self) -> None:
        guest = self.app.monitor.guest(self.guest_name)
        if guest is None:
            return
        t = Text.assemble(("console ", "bold"), (self.guest_name, "bold"), f" {self.port_name} ",
                          fmt.status_text(guest))
        if self.prefix_armed:
            t.append("   PREFIX: d detach · p pause/resume · s stop · k kill · S snapshot · n/N next/prev · "
                     "v COM1/hvc0/VGA · w save screen · [ scrollback", style="reverse")
        else:
            t.append(f"   {key_label(self.detach_key)} detach · {key_label(self.prefix_key)} then d/p/s/k/S/n/N/v/w/[/?",
                     style="dim")
        self.query_one("#console-title", Static).update(t)
        size = "80x25" if self.console == VGA else f"{self.term.columns}x{self.term.lines}"
        self.query_one("#terminal-frame").border_title = f"{self.guest_name} · {self.port_name} · {size}"

    @property
    def port_name(self) -> str:
        return PORT_NAMES[self.console]

    # ---- keys ----
    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        key = event.key
        if self.prefix_armed:
            self.prefix_armed = False
            self.update_title()
            self.prefix_command(key, event.character)
            return
        if key == self.detach_key:
            self.action_detach()
        elif key == self.prefix_key:
            self.action_prefix()
        else:
            self.send_key(key, event.character)

    def send_key(self, key: str, character: str | None) -> None:
        if self.console == VGA:
            keys = ps2keys.for_textual(key, character)
            if not keys:
                self.app.bell()          # no PS/2 key types it (a US layout)
            self.send(keys)
        else:
            self.send(key_to_bytes(key, character, self.term.app_cursor))

    def on_paste(self, event: events.Paste) -> None:
        event.stop()
        text = event.text.replace("\r\n", "\r").replace("\n", "\r")
        if self.console == VGA:
            untypable = sorted({ch for ch in text if not ps2keys.for_char(ch)})
            if untypable:
                self.notify(f"{len(untypable)} character(s) have no key on a US keyboard and were left out: "
                            f"{''.join(untypable)[:20]!r}", severity="warning", timeout=4)
            self.send([k for ch in text for k in ps2keys.for_char(ch)])
        else:
            self.send(text.encode())

    def send(self, data: bytes | list[int] | None) -> None:
        """Bytes to the serial or virtio console, or PS/2 keys to the VGA screen's keyboard."""
        if not data:
            return
        if self.console == VGA:
            self.app.send_keys(self.guest_name, data)
        else:
            self.app.send_input(self.guest_name, data, self.console)

    def prefix_command(self, key: str, character: str | None) -> None:
        c = character or ""
        if key == self.prefix_key:
            self.send_key(key, character)
        elif c == "d" or key == self.detach_key:
            self.action_detach()
        elif c == "p":
            self.app.toggle_pause(self.guest_name)
        elif c == "s":
            self.app.stop_guest(self.guest_name)
        elif c == "k":
            self.app.kill_guest(self.guest_name)
        elif c == "S":
            self.app.snapshot_guest(self.guest_name)
        elif c in ("n", "N"):
            self.switch(+1 if c == "n" else -1)
        elif c == "v":
            self.attach(self.guest_name, CONSOLES[(CONSOLES.index(self.console) + 1) % len(CONSOLES)])
        elif c == "w":
            self.app.save_vga_screen(self.guest_name)
        elif c == "[":
            self.app.show_scrollback(self.guest_name, self.console)
        elif c == "?":
            self.app.show_help()
        else:
            self.app.bell()

    def switch(self, step: int) -> None:
        names = self.app.guest_order()
        if not names:
            return
        i = names.index(self.guest_name) if self.guest_name in names else -1
        name = names[(i + step) % len(names)]
        self.attach(name, self._preferred(name))

    def action_prefix(self) -> None:
        self.prefix_armed = True
        self.update_title()

    def action_detach(self) -> None:
        self.dismiss_console()

    def dismiss_console(self) -> None:
        self._detach_stream()
        if self.app.screen is self:
            self.app.pop_screen()
