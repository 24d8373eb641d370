"""HvtuiApp: the Textual application around one Host.

The app starts the Host on its own asyncio loop when it mounts, creates the fleet (the
default one or a --fleet file's), and closes the Host (killing and removing every guest)
when it unmounts. Screens only read the Host; lifecycle goes through the methods here,
which run as workers and turn errors into notifications. Host events are relayed to the
screens; a crash raises an error notification naming the guest and the reason.
Snapshot, restore and clone also run as workers (the Host does the blocking part on
threads) and end with a notification of their result or of the error's one line.

Nothing a guest, a file or a key does ends the app: an HvError is a notification; any
other exception in a worker, an action or a palette command is a notification and a
record with its traceback in the monitor log (LOG_DIR/hvtui.log), and the app goes on.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import time
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from hvtui import images, logs
from hvtui.errors import ConfigError, HvError
from hvtui.host import HVC, SERIAL, VGA, GuestSpec, Host, HostEvent
from hvtui.tui import gdb as tui_gdb
from hvtui.tui.config import DEFAULT_FLEET, Config, load_config, load_fleet
from hvtui.tui.screens.console import PREFIX_COMMANDS, ConsoleScreen, key_label
from hvtui.tui.screens.dashboard import DashboardScreen
from hvtui.tui.screens.modals import (SNAPSHOT_SUFFIX, CloneScreen, ConfirmScreen, HelpScreen,
                                      NewGuestScreen, RestoreScreen, SnapshotScreen)
from hvtui.tui.screens.scrollback import ScrollbackScreen
from hvtui.vmm.kvm import Kvm
from hvtui.vmm.machine import State


class HvtuiApp(App):
    CSS_PATH = "hvtui.tcss"
    TITLE = "hvtui"

    def __init__(self, specs: Iterable[GuestSpec] | None = None, config: Config | None = None,
                 log_dir: str | Path | None = None, sample_interval: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.config = config or Config()
        self.specs = [dataclasses.replace(s) for s in (DEFAULT_FLEET if specs is None else specs)]
        self.host = Host(log_dir=log_dir, sample_interval=sample_interval,
                         log_max_bytes=self.config.log_max_bytes, log_keep=self.config.log_keep)
        self.fleet_started = False
        self._monitor_log = None
        self.console_guest: str | None = None
        self._unsubscribe = None

    # ---- life of the app ----
    def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        else:
            self.notify(f"unknown theme {self.config.theme!r}; themes: {', '.join(sorted(self.available_themes))}",
                        title="Config", severity="warning", timeout=10)
        keymap = dict(self.config.keymap)
        keymap.setdefault("console.detach", self.config.detach_key)
        keymap.setdefault("console.prefix", self.config.prefix_key)
        self.set_keymap(keymap)
        self.host.start()
        self._monitor_log = logs.open_monitor_log(self.host.log_dir)
        self._unsubscribe = self.host.subscribe(self.on_host_event)
        self.push_screen(DashboardScreen())
        self.run_worker(self.start_fleet(), name="fleet", group="fleet", exit_on_error=False)

    async def start_fleet(self) -> None:
        for spec in self.specs:
            try:
                await self.host.create(spec)
            except HvError as e:
                self.notify(f"{spec.name or spec.image}: {e}", title="Could not start a guest",
                            severity="error", timeout=10)
            except Exception as e:
                self.report_failure(f"start {spec.name or spec.image}", e)
        self.fleet_started = True

    async def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        await self.host.close()
        logs.close_monitor_log(self._monitor_log)

    # ---- failures that are not the user's: a notification and a log record, never an exit ----
    def report_failure(self, what: str, error: BaseException) -> None:
        logs.log.error("could not %s: %s: %s", what, type(error).__name__, error, exc_info=error)
        where = f"; details in {self.host.log_dir / logs.MONITOR_LOG}" if self._monitor_log else ""
        self.notify(f"{type(error).__name__}: {error}{where}", title=f"Could not {what}", severity="error",
                    timeout=15)

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

    # ---- host events ----
    def on_host_event(self, event: HostEvent) -> None:
        if event.kind == "state" and event.state == State.RUNNING:
            self.lower_vcpu_priority(event.guest)
        if event.kind == "state" and event.state == State.CRASHED:
            guest = self.host.guests.get(event.guest)
            reason = guest.crash.summary() if guest and guest.crash else "unknown reason"
            self.notify(f"{event.guest} crashed: {reason}", title="Guest crashed",
                        severity="error", timeout=15)
        tui_gdb.on_event(self, event)
        for screen in self.screen_stack:
            handler = getattr(screen, "host_event", None)
            if handler is not None:
                handler(event)

    def lower_vcpu_priority(self, name: str) -> None:
        """Give a guest's vCPU threads the configured niceness, so that the UI (on the main
        thread) keeps answering keys when guests keep every core busy; the guest whose
        console is open gets a better one (console_nice), so that it answers keys too."""
        guest = self.host.guests.get(name)
        if guest is None or self.config.vcpu_nice <= 0:
            return
        background = self.config.vcpu_nice if self.can_lower_nice() else self.config.console_nice
        nice = self.config.console_nice if name == self.console_guest else background
        for thread in getattr(guest.machine, "_threads", ()):
            if thread.native_id is not None and thread.is_alive():
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, thread.native_id, nice)

    def can_lower_nice(self) -> bool:
        """Whether a thread's niceness can go back down (root, or RLIMIT_NICE allows it);
        without that every guest stays at console_nice rather than at vcpu_nice."""
        limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
        return os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20 - self.config.console_nice

    def set_console_guest(self, name: str | None) -> None:
        """The guest whose console is on screen (None: none); priorities follow it."""
        before, self.console_guest = self.console_guest, name
        for guest in (before, name):
            if guest:
                self.lower_vcpu_priority(guest)

    def guest_order(self) -> list[str]:
        """Guest names in the dashboard's order (its sort and filter)."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted:
                return list(screen.table.order) or list(self.host.guests)
        return list(self.host.guests)

    # ---- lifecycle (shared by the dashboard, the console and the palette) ----
    def _run(self, coro, what: str) -> None:
        async def guarded():
            try:
                await coro
            except (HvError, OSError) as e:
                self.notify(str(e), title=f"Could not {what}", severity="error", timeout=8)
            except Exception as e:    # MemoryError, a bug: reported; the app and the guests go on
                self.report_failure(what, e)
            self.refresh_bindings()
        self.run_worker(guarded(), group="lifecycle", exit_on_error=False)

    def toggle_pause(self, name: str) -> None:
        guest = self.host.guests.get(name)
        if guest is None:
            return
        if guest.state == State.PAUSED:
            self._run(self.host.resume(name), "resume")
        else:
            self._run(self.host.pause(name), "pause")

    def stop_guest(self, name: str) -> None:
        self._run(self.host.stop(name), "stop")

    def kill_guest(self, name: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run(self.host.kill(name), "kill")
        self.push_screen(ConfirmScreen(f"Kill {name}? Its vCPUs end now."), answered)

    def start_gdb(self, name: str) -> None:
        """A gdb server for the guest (hvtui/tui/gdb.py), and the line to type in gdb."""
        self._run(tui_gdb.start(self, name), f"start a gdb server for {name}")

    def remove_guest(self, name: str) -> None:
        self._run(self.host.remove(name), "remove")

    def create_guest(self, spec: GuestSpec) -> None:
        async def create():
            guest = await self.host.create(spec)
            self.notify(f"{guest.name} started", timeout=2)
        self._run(create(), f"create {spec.name or spec.image}")

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
        if name not in self.host.guests:
            return

        def answered(path: str | None) -> None:
            if path:
                self.snapshot_guest(name, path)
        self.push_screen(SnapshotScreen(name, self.default_snapshot_path(name)), answered)

    def snapshot_guest(self, name: str, path: str | os.PathLike | None = None) -> None:
        """Save a live snapshot of name to path (default: a new file in the snapshot dir)."""
        async def save():
            target = path or self.default_snapshot_path(name)
            self._ensure_snapshot_dir(target)
            info = await self.host.snapshot(name, target)
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
        its disk file is opened read-write."""
        async def restore():
            if not confirmed_disk:
                from hvtui.vmm import snapshot
                info = await asyncio.to_thread(snapshot.verify, os.fspath(path))
                if info["disk"]:
                    mode = "read-only" if info["disk_readonly"] else "read-write"
                    self.push_screen(ConfirmScreen(f"{os.path.basename(os.fspath(path))} had the disk "
                                                   f"{info['disk']}: restore opens it {mode}. Restore?"),
                                     lambda yes: yes and self.restore_snapshot(path, name, confirmed_disk=True))
                    return
            guest = await self.host.restore(path, name=name)
            self.select_guest(guest.name)
            self.notify(f"{guest.name} restored from {os.fspath(path)}", title="Restore", timeout=6)
        self._run(restore(), f"restore {os.path.basename(os.fspath(path))}")

    def ask_clone(self, name: str) -> None:
        if name not in self.host.guests:
            return

        def answered(answer: tuple[int, str] | None) -> None:
            if answer:
                self.clone_guest(name, *answer)
        self.push_screen(CloneScreen(name, taken=self.host.guests), answered)

    def clone_guest(self, name: str, count: int, prefix: str) -> None:
        """A live snapshot of name to the snapshot dir, restored as prefix-1 ... prefix-count."""
        async def clone():
            names = [f"{prefix}-{i}" for i in range(1, count + 1)]
            taken = [n for n in names if n in self.host.guests]
            if taken:
                raise ConfigError(f"a guest named {taken[0]!r} already exists")
            disk = self.host.get(name).machine.config.disk
            if disk:
                raise ConfigError(f"{name} has the disk {disk}: its clones would all write to it; snapshot it "
                                  "and restore each copy with a disk of its own (hvtui restore --disk)")
            target = self.default_snapshot_path(name)
            self._ensure_snapshot_dir(target)
            info = await self.host.snapshot(name, target)
            try:
                clones = await self.host.clone(info["path"], names)
            finally:
                made = [n for n in names if n in self.host.guests]
                if made:
                    self.select_guest(made[0])
            self.notify(f"{name} cloned {len(clones)} time(s): {', '.join(g.name for g in clones)} "
                        f"(from {info['path']})", title="Clone", timeout=8)
        self._run(clone(), f"clone {name}")

    def select_guest(self, name: str) -> None:
        """Put the dashboard's cursor on name (now, or as soon as its row is there)."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted:
                screen.select(name)

    def ask_quit(self) -> None:
        """Quit, asking first when guests are still live (quitting kills them)."""
        live = [g.name for g in self.host.guests.values() if g.state.live]
        if not live:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()
        self.push_screen(ConfirmScreen(f"Quit hvtui? {len(live)} live guest(s) will be killed."), answered)

    def ask_new_guest(self, image: str = "counter") -> None:
        def answered(spec: GuestSpec | None) -> None:
            if spec is not None:
                self.create_guest(spec)
        self.push_screen(NewGuestScreen(image), answered)

    def open_console(self, name: str) -> None:
        if name in self.host.guests:
            self.push_screen(ConsoleScreen(name))

    def show_scrollback(self, name: str, console: str = SERIAL) -> None:
        guest = self.host.guests.get(name)
        if guest is not None:
            if console == VGA:    # no scrollback on a VGA screen: search what it shows
                history = self.host.vga_screen(name).text().encode()
            else:
                history = guest.hvc_history if console == HVC else guest.history
            self.push_screen(ScrollbackScreen(f"{name} ({console})", bytes(history)))

    def save_vga_screen(self, name: str) -> None:
        """Save the guest's VGA screen as <screens dir>/<guest>-<time>.txt and .svg."""
        from hvtui import textscreen
        if name not in self.host.guests:
            return
        directory = self.config.screens
        base = directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            txt, svg = textscreen.save(self.host.vga_screen(name), str(base), f"{name}: VGA screen")
        except (OSError, HvError) as e:
            self.notify(str(e), title="Could not save the screen", severity="error", timeout=8)
            return
        self.notify(f"{name}'s VGA screen saved to {svg} and {os.path.basename(txt)}", title="Screen", timeout=8)

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
        console.append(("ctrl+q", "on the dashboard: quit (asks while guests live); in a console: the guest's"))
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
        for name, img in images.BUILTINS.items():
            yield SystemCommand(f"New guest: {name}", f"Start a {name} guest now: {img.description}",
                                lambda n=name: self.create_guest(GuestSpec(n, memory_mib=32)))
        for guest in list(self.host.guests.values()):
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
    """`hvtui [--fleet FILE.toml]`: the TUI over the default fleet or the file's guests."""
    config = load_config()
    fleet = getattr(args, "fleet", None)
    specs = load_fleet(fleet) if fleet else None
    for spec in specs or DEFAULT_FLEET:     # a bad image or no KVM: one line, before any screen
        images.resolve(spec.image)
    Kvm.get()
    app = HvtuiApp(specs=specs, config=config)
    app.host.prepare_log_dir()
    app.run()
    return app.return_code or 0
