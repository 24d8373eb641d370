"""HvtuiApp: the Textual application, one client of an api.Monitor.

The monitor is the user's daemon (hvtui.client, started in the background when none runs:
quitting the TUI detaches and the guests go on) or, with --embedded, a Host in this process
(tests, screenshots: quitting ends its guests). Either way the app knows only hvtui.api:
views of guests, events, the lifecycle table, commands. Screens read views; lifecycle goes
through the methods here, which run as workers and turn any error (an unexpected exception
included) into a notification, logged with its traceback in the monitor's log. Events are
relayed to the screens; a crash raises an error notification naming the guest and the reason.

Nothing a guest, a file or a key does ends the app: an HvError is a notification; any
other exception in a worker, an action or a palette command is a notification and a
record with its traceback in the monitor's log (LOG_DIR/hvtui.log), and the app goes on.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import traceback
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from hvtui import api, images, logs
from hvtui.api import SERIAL, VGA, GuestSpec, State
from hvtui.errors import ConfigError, HvError
from hvtui.tui import gdb as tui_gdb
from hvtui.tui.config import DEFAULT_FLEET, Config, load_config, load_fleet
from hvtui.tui.screens.console import PREFIX_COMMANDS, ConsoleScreen, key_label
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import (SNAPSHOT_SUFFIX, CloneScreen, ConfirmScreen, HelpScreen,
                                      NewGuestScreen, RestoreScreen, SnapshotScreen)
from hvtui.tui.screens.scrollback import ScrollbackScreen

SCROLLBACK_BYTES = 1 << 20


class HvtuiApp(App):
    CSS_PATH = "hvtui.tcss"
    TITLE = "hvtui"

    def __init__(self, specs: Iterable[GuestSpec] | None = None, config: Config | None = None,
                 log_dir: str | Path | None = None, sample_interval: float = 0.5,
                 monitor: api.Monitor | None = None, **kwargs):
        """Over monitor (a daemon's client), or an embedded one (log_dir, sample_interval).
        specs: the guests to create at start (default: the built-in fleet for an embedded
        monitor, none for a daemon); a name that exists already is left alone."""
        super().__init__(**kwargs)
        self.config = config or Config()
        if monitor is None:
            monitor = api.embedded(log_dir=log_dir, sample_interval=sample_interval,
                                   vcpu_nice=self.config.vcpu_nice, console_nice=self.config.console_nice,
                                   log_max_bytes=self.config.log_max_bytes, log_keep=self.config.log_keep)
            if specs is None:
                specs = DEFAULT_FLEET
        self.monitor = monitor
        self.specs = list(specs or ())
        self.fleet_started = False
        self.console_guest: str | None = None
        self._unsubscribe = None
        self._crashes_told: set[tuple[str, int]] = set()
        self._key_tasks: set[asyncio.Task] = set()

    # ---- life of the app ----
    async def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        else:
            self.notify(f"unknown theme {self.config.theme!r}; themes: {', '.join(sorted(self.available_themes))}",
                        title="Config", severity="warning", timeout=10)
        keymap = dict(self.config.keymap)
        keymap.setdefault("console.detach", self.config.detach_key)
        keymap.setdefault("console.prefix", self.config.prefix_key)
        self.set_keymap(keymap)
        try:
            await self.monitor.open()
        except HvError as e:
            self.exit(return_code=1, message=f"hvtui: {e}")
            return
        self._unsubscribe = self.monitor.subscribe(self.on_monitor_event)
        self.push_screen(DashboardScreen())
        self.run_worker(self.start_fleet(), name="fleet", group="fleet", exit_on_error=False)

    async def start_fleet(self) -> None:
        for spec in self.specs:
            if spec.name and self.monitor.guest(spec.name) is not None:
                continue            # the daemon has it already (another TUI started it)
            try:
                await self.monitor.create(api.absolute_spec(spec))
            except HvError as e:
                self.notify(f"{spec.name or spec.image}: {e}", title="Could not start a guest",
                            severity="error", timeout=10)
            except Exception as e:
                self.report_failure(f"start {spec.name or spec.image}", e)
        self.fleet_started = True

    async def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        await self.monitor.close()      # an embedded monitor ends its guests; a daemon goes on

    # ---- monitor events ----
    def on_monitor_event(self, event: api.Event) -> None:
        if isinstance(event, (api.GuestChanged, api.GuestAdded)) and event.guest.state == State.CRASHED:
            g = event.guest
            if (g.name, g.run) not in self._crashes_told:
                self._crashes_told.add((g.name, g.run))
                reason = g.crash.summary if g.crash else "unknown reason"
                where = f" (report in {g.log})" if g.log else ""
                self.notify(f"{g.name} crashed: {reason}{where}", title="Guest crashed", severity="error", timeout=15)
        if isinstance(event, api.Notice):
            self.notify(event.text, severity=event.severity, timeout=10)
        tui_gdb.on_event(self, event)
        if isinstance(event, api.Gone):
            self.exit(message=f"hvtui: {event.reason}")
            return
        for screen in self.screen_stack:
            handler = getattr(screen, "monitor_event", None)
            if handler is not None:
                try:
                    handler(event)
                except Exception as e:
                    self.report_failure("show an event", e)

    def set_console_guest(self, name: str | None) -> None:
        """The guest whose console is on screen (None: none)."""
        self.console_guest = name

    def guest_order(self) -> list[str]:
        """Guest names in the dashboard's order (its sort and filter)."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted:
                return list(screen.table.order) or self.names()
        return self.names()

    def names(self) -> list[str]:
        return [g.name for g in self.monitor.guests()]

    # ---- errors ----
    def report_failure(self, what: str, error: BaseException) -> None:
        """A failure that is not the user's (a bug, MemoryError): a notification, and a record
        with its traceback in the monitor's log (this process's, or the daemon's); never an exit."""
        where = self.monitor.log_file
        self.notify(f"{type(error).__name__}: {error}" + (f"; details in {where}" if where else ""),
                    title=f"Could not {what}", severity="error", timeout=15)
        if self.monitor.embedded:
            logs.log.error("could not %s: %s: %s", what, type(error).__name__, error, exc_info=error)
            return
        text = f"TUI: could not {what}\n" + "".join(traceback.format_exception(error))

        async def send():
            with contextlib.suppress(Exception):
                await self.monitor.report(text)
        self.run_worker(send(), group="report", exit_on_error=False)

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key binding's action: an exception it raises is reported, not fatal."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except HvError as e:
            self.notify(str(e), title="Could not do that", severity="error", timeout=8)
        except Exception as e:
            self.report_failure(f"do {action if isinstance(action, str) else 'that'}", e)
        return True

    def guarded(self, what: str, callback):
        """callback, with any exception reported instead of ending the app (palette commands)."""
        def run(*args):
            try:
                return callback(*args)
            except HvError as e:
                self.notify(str(e), title=f"Could not {what}", severity="error", timeout=8)
            except Exception as e:
                self.report_failure(what, e)
        return run

    def action_quit(self) -> None:
        """Ctrl+Q (Textual's quit key) asks as q does while guests live; in a console it is
        the guest's key (check_action)."""
        self.ask_quit()

    # ---- lifecycle (shared by the dashboard, the console and the palette) ----
    def _run(self, coro, what: str) -> None:
        async def guarded():
            try:
                await coro
            except (HvError, OSError) as e:
                self.notify(str(e), title=f"Could not {what}", severity="error", timeout=8)
            except Exception as e:      # MemoryError, a bug: reported; the app and the guests go on
                self.report_failure(what, e)
            self.refresh_bindings()
        self.run_worker(guarded(), group="lifecycle", exit_on_error=False)

    def toggle_pause(self, name: str) -> None:
        guest = self.monitor.guest(name)
        if guest is None:
            return
        if guest.state == State.PAUSED:
            self._run(self.monitor.resume(name), "resume")
        else:
            self._run(self.monitor.pause(name), "pause")

    def start_guest(self, name: str) -> None:
        self._run(self.monitor.start(name), f"start {name}")

    def reset_guest(self, name: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run(self.monitor.reset(name), f"reset {name}")
        self.push_screen(ConfirmScreen(f"Reset {name}? It boots again from its kernel."), answered)

    def stop_guest(self, name: str) -> None:
        self._run(self.monitor.stop(name), "stop")

    def kill_guest(self, name: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run(self.monitor.kill(name), "kill")
        self.push_screen(ConfirmScreen(f"Kill {name}? Its vCPUs end now."), answered)

    def start_gdb(self, name: str) -> None:
        """A gdb server for the guest (in the monitor), and the line to type in gdb."""
        self._run(tui_gdb.start(self, name), f"start a gdb server for {name}")

    def remove_guest(self, name: str) -> None:
        self._run(self.monitor.remove(name), "remove")

    def create_guest(self, spec: GuestSpec) -> None:
        async def create():
            guest = await self.monitor.create(api.absolute_spec(spec))
            self.notify(f"{guest.name} started", timeout=2)
        self._run(create(), f"create {spec.name or spec.image}")

    def send_input(self, name: str, data: bytes, console: str = SERIAL) -> None:
        """Keys for a guest's console; a refusal (an ended guest, a full queue) is said, not
        raised. A plain task per key, in order: no worker, no footer refresh (latency)."""
        async def send():
            try:
                taken = await self.monitor.send_input(name, data, console)
            except HvError as e:
                self.bell()
                self.notify(str(e), severity="warning", timeout=2)
                return
            except Exception as e:
                self.report_failure("send input", e)
                return
            if taken < len(data):       # its input queue is full: the guest is not reading
                self.bell()
                self.notify(f"{name} is not reading its input: {len(data) - taken} byte(s) dropped",
                            severity="warning", timeout=3)
        task = asyncio.get_running_loop().create_task(send())
        self._key_tasks.add(task)
        task.add_done_callback(self._key_tasks.discard)

    def send_keys(self, name: str, keys: list[int]) -> None:
        """PS/2 keys for a guest's VGA console, in order; a full queue is said, not raised."""
        async def send():
            try:
                await self.monitor.send_keys(name, keys)
            except HvError as e:
                self.bell()
                self.notify(str(e), severity="warning", timeout=2)
            except Exception as e:
                self.report_failure("send keys", e)
        task = asyncio.get_running_loop().create_task(send())
        self._key_tasks.add(task)
        task.add_done_callback(self._key_tasks.discard)

    # ---- snapshots (shared by the dashboard, the console and the palette) ----
    def default_snapshot_path(self, name: str) -> Path:
        """<snapshot dir>/<guest>-<YYYYmmdd-HHMMSS>.hvsnap, not an existing file's name."""
        base = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        directory = self.config.snapshots
        path, n = directory / f"{base}{SNAPSHOT_SUFFIX}", 1
        while path.exists():
            n += 1
            path = directory / f"{base}-{n}{SNAPSHOT_SUFFIX}"
        return path

    def _ensure_snapshot_dir(self, path: str | os.PathLike) -> None:
        """Create the configured snapshot directory when path is in it (other directories
        must exist: a typo should not make one)."""
        directory = self.config.snapshots
        if Path(path).expanduser().absolute().parent == directory.absolute():
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"snapshot directory {directory}: {e.strerror or e}") from None

    def ask_snapshot(self, name: str) -> None:
        if self.monitor.guest(name) is None:
            return

        def answered(path: str | None) -> None:
            if path:
                self.snapshot_guest(name, path)
        self.push_screen(SnapshotScreen(name, self.default_snapshot_path(name)), answered)

    def snapshot_guest(self, name: str, path: str | os.PathLike | None = None) -> None:
        """Save a live snapshot of name to path (default: a new file in the snapshot dir)."""
        async def save():
            target = os.path.abspath(os.fspath(path or self.default_snapshot_path(name)))
            self._ensure_snapshot_dir(target)
            info = await self.monitor.snapshot(name, target)
            self.notify(f"snapshot of {name} saved to {info['path']} "
                        f"({info['allocated_bytes'] / 2**20:.1f} MiB, {info['save_ms']:.0f} ms)",
                        title="Snapshot", timeout=8)
        self._run(save(), f"snapshot {name}")

    def ask_restore(self) -> None:
        def answered(answer: tuple[str, str | None] | None) -> None:
            if answer:
                self.restore_snapshot(*answer)
        self.push_screen(RestoreScreen(self.config.snapshots), answered)

    def restore_snapshot(self, path: str | os.PathLike, name: str | None = None, confirmed_disk: bool = False) -> None:
        """A new guest from the snapshot at path (verified first: a bad file creates nothing).
        A snapshot whose guest had a disk is restored only after the user confirms that
        its disk file is opened again (read-write unless it was read-only)."""
        async def restore():
            if not confirmed_disk:
                info = await asyncio.to_thread(api.snapshot_info, os.fspath(path))
                if info["disk"]:
                    mode = "read-only" if info["disk_readonly"] else "read-write"
                    self.push_screen(ConfirmScreen(f"{os.path.basename(os.fspath(path))} had the disk "
                                                   f"{info['disk']}: restore opens it {mode}. Restore?"),
                                     lambda yes: yes and self.restore_snapshot(path, name, confirmed_disk=True))
                    return
            guest = await self.monitor.restore(os.path.abspath(os.fspath(path)), name=name)
            self.select_guest(guest.name)
            self.notify(f"{guest.name} restored from {os.fspath(path)}", title="Restore", timeout=6)
        self._run(restore(), f"restore {os.path.basename(os.fspath(path))}")

    def ask_clone(self, name: str) -> None:
        if self.monitor.guest(name) is None:
            return

        def answered(answer: tuple[int, str] | None) -> None:
            if answer:
                self.clone_guest(name, *answer)
        self.push_screen(CloneScreen(name, taken=self.names()), answered)

    def clone_guest(self, name: str, count: int, prefix: str) -> None:
        """A live snapshot of name to the snapshot dir, restored as prefix-1 ... prefix-count."""
        async def clone():
            names = [f"{prefix}-{i}" for i in range(1, count + 1)]
            target = os.path.abspath(self.default_snapshot_path(name))
            self._ensure_snapshot_dir(target)
            try:
                clones = await self.monitor.clone(name, names, target)
            finally:
                made = [n for n in names if self.monitor.guest(n) is not None]
                if made:
                    self.select_guest(made[0])
            disk = clones[0].spec.disk if clones else None
            shared = f"; they read its disk {disk} read-only (one writer only)" if disk else ""
            self.notify(f"{name} cloned {len(clones)} time(s): {', '.join(g.name for g in clones)} "
                        f"(from {target}){shared}", title="Clone", timeout=8)
        self._run(clone(), f"clone {name}")

    def select_guest(self, name: str) -> None:
        """Put the dashboard's cursor on name (now, or as soon as its row is there)."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted:
                screen.select(name)

    def ask_quit(self) -> None:
        """Quit. Attached to the daemon: detach at once, the guests go on. Embedded: ask
        first when guests are still live (quitting kills them)."""
        live = [g.name for g in self.monitor.guests() if g.state.live]
        if not live or not self.monitor.embedded:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()
        self.push_screen(ConfirmScreen(f"Quit hvtui? {len(live)} live guest(s) will be killed."), answered)

    def ask_kill_server(self) -> None:
        """Stop the monitor and every guest in it (kill-server), after a confirmation."""
        live = [g.name for g in self.monitor.guests() if g.state.live]

        def answered(yes: bool | None) -> None:
            if yes:
                async def stop():
                    await self.monitor.shutdown()
                    self.exit()
                self._run(stop(), "stop the monitor")
        self.push_screen(ConfirmScreen(f"Stop the monitor? {len(live)} live guest(s) will be killed "
                                       "and every client let go."), answered)

    def ask_new_guest(self, image: str = "counter") -> None:
        def answered(spec: GuestSpec | None) -> None:
            if spec is not None:
                self.create_guest(spec)
        self.push_screen(NewGuestScreen(image), answered)

    def open_console(self, name: str) -> None:
        if self.monitor.guest(name) is not None:
            self.push_screen(ConsoleScreen(name))

    def show_scrollback(self, name: str, console: str = SERIAL) -> None:
        async def show():
            if console == VGA:    # no scrollback on a VGA screen: search what it shows
                history = (await self.monitor.screen(name)).text().encode()
            else:
                history = await self.monitor.console_history(name, console, SCROLLBACK_BYTES)
            self.push_screen(ScrollbackScreen(f"{name} ({console})", history))
        self._run(show(), f"show {name}'s scrollback")

    def save_vga_screen(self, name: str) -> None:
        """Save the guest's VGA screen as <screens dir>/<guest>-<time>.txt and .svg."""
        from hvtui import textscreen

        async def save():
            screen = await self.monitor.screen(name)
            directory = self.config.screens
            base = directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                directory.mkdir(parents=True, exist_ok=True)
                txt, svg = textscreen.save(screen, str(base), f"{name}: VGA screen")
            except OSError as e:
                self.notify(str(e), title="Could not save the screen", severity="error", timeout=8)
                return
            self.notify(f"{name}'s VGA screen saved to {svg} and {os.path.basename(txt)}", title="Screen", timeout=8)
        self._run(save(), f"save {name}'s screen")

    def show_help(self) -> None:
        dashboard = []
        for b in DashboardScreen.BINDINGS:
            key = self.keymap_key(b.id, b.key)
            shown = dataclasses.replace(b, key=key.split(",")[0].strip(), key_display=None)
            dashboard.append((self.get_key_display(shown), b.tooltip or b.description or b.action))
        dashboard.append(("enter", "Console of the selected guest"))
        prefix = key_label(self.config.prefix_key)
        console = [(key_label(self.config.detach_key), "detach")]
        console += [(f"{prefix} {prefix if k == 'prefix' else k}", what) for k, what in PREFIX_COMMANDS]
        console.append(("other keys", "go to the guest (Ctrl+letter, arrows, F1-F12; on VGA as PS/2 scancodes)"))
        console.append(("ctrl+q", "on the dashboard: quit (asks while an embedded monitor's guests live); "
                                  "in a console: the guest's"))
        self.push_screen(HelpScreen(dashboard, console))

    def keymap_key(self, binding_id: str | None, default: str) -> str:
        return self.config.keymap.get(binding_id or "", default)

    # ---- command palette ----
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for command in self._system_commands():
            yield command._replace(callback=self.guarded(command.title.lower(), command.callback))

    def _system_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("New guest", "Create a guest (image, memory, vCPUs, name)", self.ask_new_guest)
        yield SystemCommand("Help", "Every key of the dashboard and the console", self.show_help)
        yield SystemCommand("Restore a snapshot", f"Pick a snapshot file ({self.config.snapshots} or any "
                            "path) and start a guest from it", self.ask_restore)
        yield SystemCommand("Stop the monitor", "Stop the monitor and every guest (kill-server; asks first)",
                            self.ask_kill_server)
        for name, img in images.BUILTINS.items():
            yield SystemCommand(f"New guest: {name}", f"Start a {name} guest now: {img.description}",
                                lambda n=name: self.create_guest(GuestSpec(n, memory_mib=32)))
        for guest in self.monitor.guests():
            n = guest.name
            yield SystemCommand(f"Console: {n}", f"Attach to {n}'s serial console",
                                lambda n=n: self.open_console(n), discover=False)
            if guest.state in (State.RUNNING, State.PAUSED):
                verb = "Resume" if guest.state == State.PAUSED else "Pause"
                yield SystemCommand(f"{verb}: {n}", f"{verb} {n}", lambda n=n: self.toggle_pause(n), discover=False)
            if guest.state in (State.RUNNING, State.PAUSED):
                yield SystemCommand(f"Snapshot: {n}", f"Save a live snapshot of {n} (asks where)",
                                    lambda n=n: self.ask_snapshot(n), discover=False)
                yield SystemCommand(f"Clone: {n}", f"Clone {n} N times (a live snapshot, restored N times)",
                                    lambda n=n: self.ask_clone(n), discover=False)
            if guest.can("start"):
                yield SystemCommand(f"Start: {n}", f"Start {n}" + (" again from its spec" if guest.end else ""),
                                    lambda n=n: self.start_guest(n), discover=False)
            if guest.can("reset"):
                yield SystemCommand(f"Reset: {n}", f"Hard reset {n} (asks first)", lambda n=n: self.reset_guest(n),
                                    discover=False)
            if guest.state.live:
                yield SystemCommand(f"gdb: {n}", f"Serve the GDB remote protocol for {n} (shows the target "
                                    "remote line)", lambda n=n: self.start_gdb(n), discover=False)
                yield SystemCommand(f"Stop: {n}", f"Stop {n}", lambda n=n: self.stop_guest(n), discover=False)
                yield SystemCommand(f"Kill: {n}", f"Kill {n} (asks first)", lambda n=n: self.kill_guest(n),
                                    discover=False)
            else:
                yield SystemCommand(f"Remove: {n}", f"Remove {n}", lambda n=n: self.remove_guest(n),
                                    discover=False)

    def check_action(self, action: str, parameters) -> bool | None:
        # on a console, every key but its detach and prefix keys belongs to the guest:
        # Ctrl+P (the palette), Ctrl+Q (quit) and the like reach it as bytes
        if action in ("command_palette", "quit", "help_quit") and isinstance(self.screen, ConsoleScreen):
            return False
        return True


def run_tui(args) -> int:
    """`hvtui [--fleet FILE.toml] [--embedded]`: the TUI attached to the user's monitor
    (started in the background with the built-in fleet when none runs), or, --embedded,
    over a monitor of its own. A bad image or no KVM: one line, before any screen."""
    config = load_config()
    fleet = getattr(args, "fleet", None)
    specs = load_fleet(fleet) if fleet else None
    for spec in specs or DEFAULT_FLEET:
        images.resolve(spec.image)
    if getattr(args, "embedded", False):
        api.log_to_file()                 # the monitor is here: its log too
        app = HvtuiApp(specs=specs, config=config)
    else:
        from hvtui import client
        started = client.ensure_server(vcpu_nice=config.vcpu_nice, console_nice=config.console_nice,
                                       log_max_bytes=config.log_max_bytes, log_keep=config.log_keep)
        app = HvtuiApp(specs=specs if specs is not None else (DEFAULT_FLEET if started else ()),
                       config=config, monitor=client.RemoteMonitor(client.socket_path()))
    app.run()
    return app.return_code or 0
