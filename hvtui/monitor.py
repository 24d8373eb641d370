"""HostMonitor: the Host as an api.Monitor, in this process.

The TUI's --embedded mode and the daemon's socket (hvtui.server) both drive the Host only
through this adapter, so what a client can do is exactly what the api says, whether the
monitor runs in its process or behind a socket. Commands take names and specs and return
frozen views; the Host's own records never leave.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

from hvtui import api, logs, paths
from hvtui.api import SERIAL, GuestSpec, GuestView

log = logging.getLogger("hvtui")

GDB_FIRST_PORT = 1234
GDB_PORTS_TRIED = 32


class HostMonitor(api.Monitor):
    embedded = True

    def __init__(self, host, on_shutdown: Callable[[], None] | None = None):
        self.host = host
        self.on_shutdown = on_shutdown
        self.log_file = str(host.log_dir / logs.MONITOR_LOG)
        self._log_handler = None

    # -- what there is
    def guests(self) -> list[GuestView]:
        return [g.view() for g in list(self.host.guests.values())]

    def guest(self, name: str) -> GuestView | None:
        g = self.host.guests.get(name)
        return g.view() if g is not None else None

    def subscribe(self, callback):
        return self.host.subscribe(callback)

    # -- lifecycle
    async def create(self, spec: GuestSpec, start: bool = True) -> GuestView:
        return (await self.host.create(spec, start=start)).view()

    async def start(self, name: str) -> GuestView:
        return (await self.host.start_guest(name)).view()

    async def pause(self, name: str) -> None:
        await self.host.pause(name)

    async def resume(self, name: str) -> None:
        await self.host.resume(name)

    async def stop(self, name: str) -> None:
        await self.host.stop(name)

    async def kill(self, name: str) -> None:
        await self.host.kill(name)

    async def reset(self, name: str) -> None:
        await self.host.reset(name)

    async def remove(self, name: str) -> None:
        await self.host.remove(name)

    # -- snapshots
    async def snapshot(self, name: str, path: str) -> dict:
        return await self.host.snapshot(name, path)

    async def restore(self, path: str, name: str | None = None, start: bool = True, disk: str | None = None,
                      disk_readonly: bool = False, overcommit: bool = False) -> GuestView:
        overrides = {"overcommit": overcommit}
        if disk:
            overrides.update(disk=disk, disk_readonly=disk_readonly)
        return (await self.host.restore(path, name=name or None, start=start, **overrides)).view()

    async def clone(self, name: str, new_names: list[str], path: str | None = None) -> list[GuestView]:
        taken = [n for n in new_names if n in self.host.guests]
        if taken:
            raise api.ConfigError(f"a guest named {taken[0]!r} already exists")
        for n in new_names:
            api.check_spec(GuestSpec("clone", name=n))
        api.check("clone", name, self.host.get(name).state)
        if path is None:
            directory = paths.snapshot_dir()
            directory.mkdir(parents=True, exist_ok=True)
            path = str(directory / f"{name}-clone-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.hvsnap")
        original = self.host.get(name).spec
        info = await self.host.snapshot(name, path)
        keep = {"disk": original.disk, "disk_readonly": True} if original.disk else {}
        return [(await self.host.restore(info["path"], name=n, **keep)).view() for n in new_names]

    # -- consoles
    def watch_console(self, name: str, console: str, callback, replay: int = 0, attach: bool = False):
        history = self.host.stream(name, console).history
        if replay > 0 and history:
            callback(bytes(history[-replay:]))
        return self.host.console_subscribe(name, callback, console, attach=attach)

    async def console_history(self, name: str, console: str = SERIAL, max_bytes: int = 1 << 20) -> bytes:
        history = self.host.stream(name, console).history
        return bytes(history[-max_bytes:]) if max_bytes > 0 else b""

    async def send_input(self, name: str, data: bytes, console: str = SERIAL) -> int:
        return self.host.send_input(name, data, console)

    async def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20, console: str = SERIAL,
                       run: int | None = None) -> bytes:
        from hvtui.logs import run_log
        guest = self.host.get(name)
        path: Path | None = self.host.stream(name, console).log_path
        if run is not None and run != guest.run:
            if not 1 <= run < guest.run:
                raise api.ConfigError(f"{name} has had runs 1 to {guest.run}, not {run}")
            path = run_log(self.host.log_dir, name, run, console)
        if path is None:
            return b""
        try:
            with open(path, "rb") as f:
                f.seek(max(0, offset))
                return f.read(max(0, min(limit, 1 << 20)))
        except OSError as e:
            raise api.HvError(f"{path}: {e.strerror or e}") from None

    async def gdb(self, name: str, address: str | None = None, wait: bool = False) -> str:
        if address is not None:
            try:
                where = api.parse_address(address)
            except ValueError as e:
                raise api.ConfigError(str(e)) from None
            return (await self.host.serve_gdb(name, where, wait=wait)).target_remote
        guest = self.host.get(name)
        if guest.gdb is not None:
            return guest.gdb.target_remote
        for port in range(GDB_FIRST_PORT, GDB_FIRST_PORT + GDB_PORTS_TRIED):   # gdb's habit: 1234 first
            try:
                return (await self.host.serve_gdb(name, ("127.0.0.1", port), wait=wait)).target_remote
            except api.ConfigError as e:
                if "in use" not in str(e):
                    raise
        return (await self.host.serve_gdb(name, ("127.0.0.1", 0), wait=wait)).target_remote

    async def report(self, text: str) -> None:
        """A client's error, into the monitor's log (with the client's traceback in text)."""
        logs.log.error("client: %s", text[:64 * 1024])

    # -- the VGA screen and the PS/2 keyboard
    async def screen(self, name: str, console: str = api.VGA):
        if console != api.VGA:
            raise api.ConfigError(f"{console!r} is not a screen console; {api.VGA!r} is")
        return self.host.vga_screen(name)

    async def send_keys(self, name: str, keys: list[int]) -> int:
        self.host.send_keys(name, keys)
        return len(keys)

    # -- the monitor itself
    async def open(self) -> None:
        self.host.start()
        self._log_handler = logs.open_monitor_log(self.host.log_dir)

    async def shutdown(self) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown()
        else:
            await self.host.close()

    async def close(self) -> None:
        await self.host.close()
        logs.close_monitor_log(self._log_handler)
        self._log_handler = None
