"""RemoteMonitor: an api.Monitor over the daemon's socket (hvtui.wire), and starting the
daemon in the background when none runs, as tmux does.

The client keeps a mirror of every guest's view, fed by the monitor's events (and by the
views that lifecycle replies carry), so that views and subscriptions stay synchronous as
the api says. Commands are requests answered by replies; errors come back as the HvError
subclass the monitor raised, with its one line. Imports nothing of the monitor itself.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from hvtui import api, errors, paths, wire
from hvtui.api import SERIAL, GuestSpec, GuestView
from hvtui.errors import HvError

START_TIMEOUT_S = 15.0


class NotRunning(HvError):
    """No monitor answers on the socket."""


class ServerError(HvError):
    pass


def socket_path() -> Path:
    return paths.socket_path()


def server_running(path: Path | None = None) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path or socket_path()))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ensure_server(vcpu_nice: int = 19, console_nice: int = 10, log_max_bytes: int | None = None,
                  log_keep: int | None = None) -> bool:
    """Start `hvtui serve --detach` in the background unless a monitor runs; True if this
    call started it. Its start-up error (no KVM ...) comes back as one HvError line."""
    path = socket_path()
    if server_running(path):
        return False
    limits = ([] if log_max_bytes is None else ["--log-max", str(max(1, log_max_bytes >> 20))]) + \
        ([] if log_keep is None else ["--log-keep", str(log_keep)])
    # In /, as a daemon runs (it holds no user's folder, and clients send absolute paths);
    # above all `-m` puts the current folder first on sys.path, and a user in a clone of
    # hvtui (README: `pip install .`, then `hvtui`) would start the clone's sources, which
    # lack the built extension, instead of the installed package.
    proc = subprocess.Popen([sys.executable, "-m", "hvtui", "serve", "--detach", "--quiet",
                             "--vcpu-nice", str(vcpu_nice), "--console-nice", str(console_nice), *limits],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, close_fds=True, cwd="/")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server_running(path):
            return True
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()
            if server_running(path):       # another client's monitor won the race
                return False
            line = err[-1] if err else f"the monitor exited with status {proc.returncode}"
            raise HvError(line.removeprefix("hvtui: "))
        time.sleep(0.02)
    raise HvError(f"the monitor did not answer on {path} within {START_TIMEOUT_S:g}s (see {paths.monitor_log()})")


def _error(err: dict) -> HvError:
    kind = getattr(errors, str(err.get("type")), None) or getattr(wire, str(err.get("type")), None)
    message = str(err.get("message", "error"))
    if isinstance(kind, type) and issubclass(kind, HvError):
        try:
            return kind(message)
        except TypeError:
            pass
    return api.RemoteError(message)


class RemoteMonitor(api.Monitor):
    embedded = False
    log_file = str(paths.monitor_log())

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or socket_path())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.mirror: dict[str, GuestView] = {}
        self.pid = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._on_reply: dict[int, Callable] = {}     # request -> what its result does to the mirror
        self._subscribers: list[Callable[[api.Event], None]] = []
        self._watches: dict[int, Callable[[bytes], None]] = {}
        self._reader_task: asyncio.Task | None = None
        self._closed = asyncio.Event()
        self.lost = ""           # why the connection ended, when it did

    # ---- connection ----
    async def open(self) -> None:
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(str(self.path), limit=wire.MAX_MESSAGE)
        except FileNotFoundError:
            raise NotRunning(f"no monitor is running ({self.path} does not exist); start one with "
                             "`hvtui serve` or `hvtui`") from None
        except ConnectionRefusedError:
            raise NotRunning(f"no monitor answers on {self.path}; start one with `hvtui serve` or `hvtui`") from None
        except PermissionError:
            raise ServerError(f"{self.path}: permission denied (another user's monitor)") from None
        self._reader_task = asyncio.get_running_loop().create_task(self._read_forever())
        hello = await self._request("hello", on_reply=lambda r: setattr(
            self, "mirror", {v["name"]: api.view_from_wire(v) for v in r["guests"]}))
        self.pid = hello.get("pid", 0)

    async def __aenter__(self) -> RemoteMonitor:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task
        self._fail_pending("the connection to the monitor is closed")

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(NotRunning(why) if why.startswith("the ") else ServerError(why))
        self._pending.clear()
        self._on_reply.clear()

    async def _read_forever(self) -> None:
        why = "the monitor closed the connection"
        try:
            while True:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    why = "the monitor sent a message over the size limit"
                    break
                self._dispatch(wire.decode(line))
        except ConnectionError:
            pass                            # reset or broken pipe: it went away all the same
        except OSError as e:
            why = f"the connection to the monitor broke: {e}"
        finally:
            self.lost = self.lost or why        # a refusal said why already
            self._closed.set()
            self._fail_pending(self.lost)
            self._publish(api.Gone(self.lost))

    def _dispatch(self, message: dict) -> None:
        if "console" in message:
            c = message["console"]
            cb = self._watches.get(c.get("watch"))
            if cb is not None:
                cb(wire.unb64(c.get("data", "")))
            return
        if "event" in message:
            event = api.event_from_wire(message["event"])
            self._apply(event)
            self._publish(event)
            return
        rid = message.get("id")
        fut = self._pending.pop(rid, None) if rid is not None else None
        on_reply = self._on_reply.pop(rid, None) if rid is not None else None
        if fut is None:
            if not message.get("ok", True):      # an error with no request to answer (a refusal)
                self.lost = message.get("error", {}).get("message", "refused")
                for f in self._pending.values():
                    if not f.done():
                        f.set_exception(_error(message.get("error", {})))
                self._pending.clear()
                self._on_reply.clear()
            return
        if fut.done():
            return
        if message.get("ok"):
            if on_reply is not None:
                # here, in the order of the wire: the coroutine awaiting fut resumes later,
                # after this loop may have applied newer events (hello's end after the
                # reply to its create), which the reply's view must not then overwrite
                try:
                    on_reply(message.get("result"))
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    fut.set_exception(ServerError(f"a malformed reply from the monitor ({e})"))
                    return
            fut.set_result(message.get("result"))
        else:
            fut.set_exception(_error(message.get("error") or {}))

    def _apply(self, event: api.Event) -> None:
        if isinstance(event, (api.GuestAdded, api.GuestChanged, api.DebuggerEvent)):
            self.mirror[event.guest.name] = event.guest
        elif isinstance(event, api.GuestRemoved):
            self.mirror.pop(event.name, None)
        elif isinstance(event, api.StatsTick):
            for g in event.guests:
                if g.name in self.mirror:
                    self.mirror[g.name] = g
        elif isinstance(event, api.Resync):
            self.mirror = {g.name: g for g in event.guests}

    def _publish(self, event: api.Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                pass

    async def _request(self, op: str, on_reply: Callable | None = None, **args):
        """op's result; on_reply(result), if given, runs as the reply is read (see _dispatch)."""
        if self.writer is None or self._closed.is_set():
            lost = self.lost or "not connected to a monitor"
            raise NotRunning(lost) if lost.startswith(("the ", "not ")) else ServerError(lost)
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if on_reply is not None:
            self._on_reply[rid] = on_reply
        self.writer.write(wire.encode({"id": rid, "op": op, "args": args}))
        return await fut

    def _send_nowait(self, op: str, **args) -> None:
        """A request whose reply does not matter (unwatch)."""
        if self.writer is None or self._closed.is_set():
            return
        rid = next(self._ids)
        with contextlib.suppress(Exception):
            self.writer.write(wire.encode({"id": rid, "op": op, "args": args}))

    async def wait_closed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)

    def _took(self, result) -> None:
        if isinstance(result, dict) and "name" in result and "state" in result:
            view = api.view_from_wire(result)
            self.mirror[view.name] = view

    # ---- the api ----
    def guests(self) -> list[GuestView]:
        return list(self.mirror.values())

    def guest(self, name: str) -> GuestView | None:
        return self.mirror.get(name)

    def subscribe(self, callback):
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    async def create(self, spec: GuestSpec, start: bool = True) -> GuestView:
        result = await self._request("create", spec=api.to_wire(spec), start=start, on_reply=self._took)
        return api.view_from_wire(result)

    async def _lifecycle(self, op: str, name: str):
        return await self._request(op, name=name, on_reply=self._took)

    async def start(self, name: str) -> GuestView:
        return api.view_from_wire(await self._lifecycle("start", name))

    async def pause(self, name: str) -> None:
        await self._lifecycle("pause", name)

    async def resume(self, name: str) -> None:
        await self._lifecycle("resume", name)

    async def stop(self, name: str) -> None:
        await self._lifecycle("stop", name)

    async def kill(self, name: str) -> None:
        await self._lifecycle("kill", name)

    async def reset(self, name: str) -> None:
        await self._lifecycle("reset", name)

    async def remove(self, name: str) -> None:
        await self._request("remove", name=name, on_reply=lambda _: self.mirror.pop(name, None))

    async def snapshot(self, name: str, path: str) -> dict:
        return await self._request("snapshot", name=name, path=os.path.abspath(path))

    async def restore(self, path: str, name: str | None = None, start: bool = True, disk: str | None = None,
                      disk_readonly: bool = False, overcommit: bool = False) -> GuestView:
        result = await self._request("restore", path=os.path.abspath(path), name=name, start=start,
                                     disk=os.path.abspath(disk) if disk else None, disk_readonly=disk_readonly,
                                     overcommit=overcommit, on_reply=self._took)
        return api.view_from_wire(result)

    async def clone(self, name: str, new_names: list[str], path: str | None = None) -> list[GuestView]:
        result = await self._request("clone", name=name, names=list(new_names),
                                     path=os.path.abspath(path) if path else None,
                                     on_reply=lambda views: [self._took(r) for r in views])
        return [api.view_from_wire(r) for r in result]

    def watch_console(self, name: str, console: str, callback, replay: int = 0, attach: bool = False):
        """The watch is asked for now; the replay and the stream reach callback as they come."""
        wid = next(self._ids)
        buffered: list[bytes] = []
        state = {"ready": False, "gone": False}

        def on_data(data: bytes) -> None:
            if state["gone"]:
                return
            if not state["ready"]:
                buffered.append(data)
                return
            callback(data)
        self._watches[wid] = on_data

        async def ask():
            try:
                result = await self._request("watch", name=name, console=console, watch=wid,
                                             replay=replay, attach=attach)
            except HvError as e:
                self._watches.pop(wid, None)
                self._publish(api.Notice(f"console of {name}: {e}", "warning"))
                return
            if state["gone"]:
                return
            history = wire.unb64(result.get("history", ""))
            state["ready"] = True
            if history:
                callback(history)
            for chunk in buffered:
                callback(chunk)
            buffered.clear()
        task = asyncio.get_running_loop().create_task(ask())

        def unwatch():
            state["gone"] = True
            task.cancel()
            if self._watches.pop(wid, None) is not None:
                self._send_nowait("unwatch", watch=wid)
        return unwatch

    async def console_history(self, name: str, console: str = SERIAL, max_bytes: int = 1 << 20) -> bytes:
        return wire.unb64(await self._request("history", name=name, console=console, max_bytes=max_bytes))

    async def send_input(self, name: str, data: bytes, console: str = SERIAL) -> int:
        return await self._request("input", name=name, console=console, data=wire.b64(data))

    async def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20, console: str = SERIAL,
                       run: int | None = None) -> bytes:
        return wire.unb64(await self._request("log", name=name, offset=offset, limit=limit, console=console,
                                              run=run))

    async def screen(self, name: str, console: str = api.VGA):
        return api.screen_from_wire(await self._request("screen", name=name, console=console))

    async def send_keys(self, name: str, keys: list[int]) -> int:
        return await self._request("keys", name=name, keys=list(keys))

    async def gdb(self, name: str, address: str | None = None, wait: bool = False) -> str:
        result = await self._request("gdb", name=name, address=address, wait=wait,
                                     on_reply=lambda r: self._took(r.get("guest")))
        return result["target_remote"]

    async def report(self, text: str) -> None:
        await self._request("report", text=text)

    async def shutdown(self) -> None:
        """kill-server: the monitor ends its guests and exits; returns once it has gone."""
        await self._request("shutdown")
        with contextlib.suppress(asyncio.TimeoutError):
            await self.wait_closed(30)
