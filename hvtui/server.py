"""`hvtui serve`: the Host as a per-user daemon on a Unix socket.

The socket is $XDG_RUNTIME_DIR/hvtui/monitor.sock (folder 0700, socket 0600), and a
connecting peer's uid is checked with SO_PEERCRED: another user gets one error line and
the door. One monitor per user: it holds an flock on monitor.lock for its life, so a
second `hvtui serve` (or a TUI starting one) finds it and leaves.

Each client is a Session: requests are read and answered concurrently (at most
MAX_INFLIGHT at a time per client, so a client cannot make the monitor queue unbounded
work), and replies, events and console output go out through one bounded queue per
client, written by its own task. A client that reads too slowly never blocks the monitor
or a guest: when its queue is over budget, its queued events and console output are
dropped, and once it catches up it is sent a Resync (every guest's view) to redraw from.
A client that vanishes (SIGKILL mid-stream) just ends its session. An exception in a
request becomes an error reply, logged with its traceback in the monitor's log
($XDG_STATE_HOME/hvtui/hvtui.log); nothing a client does ends the monitor or a guest.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import struct
import sys
from pathlib import Path

from hvtui import api, logs, paths, wire
from hvtui.errors import HvError
from hvtui.host import Host
from hvtui.monitor import HostMonitor

log = logging.getLogger("hvtui")

QUEUE_BYTES = 8 << 20          # what may wait for one client before it is "behind"
QUEUE_ITEMS = 20000
MAX_INFLIGHT = 32              # requests of one client being served at once
MAX_WATCHES = 64               # console watches per client
MAX_CLIENTS = 64               # connections at once


class ServerError(HvError):
    pass


def prepare_runtime_dir(folder: Path) -> None:
    """Create folder 0700, or check that an existing one is ours and private."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ServerError(f"cannot create {folder}: {e.strerror or e}") from None
    st = folder.lstat()
    if st.st_uid != os.getuid() or not os.path.isdir(folder) or os.path.islink(folder):
        raise ServerError(f"{folder} belongs to another user or is not a folder; not using it")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class Session:
    """One connected client."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque()   # (kind, line)
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.behind = 0                # messages dropped since the client fell behind
        self.subscribed = False
        self.watches: dict[int, callable] = {}
        self.inflight = asyncio.Semaphore(MAX_INFLIGHT)
        self.tasks: set[asyncio.Task] = set()
        self.closed = False

    # ---- out ----
    def send(self, message: dict, kind: str = "reply") -> None:
        """Queue a message. Replies always go; events and console output are dropped while
        the client is behind (it is resynchronised when it catches up)."""
        if self.closed or (kind != "reply" and self.behind):
            self.behind += 1 if self.behind else 0
            return
        try:
            line = wire.encode(message)
        except wire.WireError as e:
            if kind != "reply":
                log.warning("dropped a %s message: %s", kind, e)
                return
            line = wire.encode({"id": message.get("id"), "ok": False,
                                "error": {"type": "ConfigError", "message": str(e)}})
        self.send_line(line, kind)

    def send_line(self, line: bytes, kind: str) -> None:
        """Queue an encoded message (an event is encoded once for every client)."""
        if self.closed:
            return
        if kind != "reply" and self.behind:
            self.behind += 1
            return
        if kind == "stats":            # only the newest stats tick matters
            for i, (k, old) in enumerate(self.queue):
                if k == "stats":
                    del self.queue[i]
                    self.queued_bytes -= len(old)
                    break
        if kind != "reply" and (self.queued_bytes + len(line) > QUEUE_BYTES or len(self.queue) >= QUEUE_ITEMS):
            self._fall_behind()
            self.behind += 1
            return
        self.queue.append((kind, line))
        self.queued_bytes += len(line)
        if self.queued_bytes > QUEUE_BYTES:
            self.room.clear()          # replies alone over budget: stop reading requests
        self.wakeup.set()

    def _fall_behind(self) -> None:
        kept = collections.deque((k, line) for k, line in self.queue if k == "reply")
        self.behind += len(self.queue) - len(kept)
        self.queue = kept
        self.queued_bytes = sum(len(line) for _, line in kept)

    async def write_forever(self) -> None:
        try:
            while not self.closed:
                if not self.queue:
                    if self.behind:        # caught up: the whole truth, then events again
                        dropped, self.behind = self.behind, 0
                        event = api.Resync(tuple(self.server.monitor.guests()), dropped)
                        self.send({"event": api.to_wire(event)}, "resync")
                        continue
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                kind, line = self.queue.popleft()
                self.queued_bytes -= len(line)
                if self.queued_bytes <= QUEUE_BYTES // 2:
                    self.room.set()
                self.writer.write(line)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    # ---- in ----
    async def read_forever(self) -> None:
        try:
            while not self.closed:
                await self.room.wait()
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    self.send({"id": None, "ok": False, "error": {
                        "type": "ConfigError", "message": f"message over {wire.MAX_MESSAGE} bytes; closing"}})
                    await asyncio.sleep(0.05)
                    break
                except asyncio.IncompleteReadError:
                    break
                await self.inflight.acquire()
                task = asyncio.get_running_loop().create_task(self.serve(line))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (ConnectionError, OSError):
            pass
        finally:
            await self.drain_and_close()

    async def drain_and_close(self) -> None:
        for _ in range(50):                 # let queued replies go (a shutdown's, an error's)
            if not self.queue or self.closed:
                break
            await asyncio.sleep(0.01)
        self.close()

    async def serve(self, line: bytes) -> None:
        rid = None
        try:
            message = wire.decode(line)
            rid = message.get("id")
            if not isinstance(rid, int) or isinstance(rid, bool):
                rid = None
                raise wire.WireError("a request needs an integer id")
            op, args = message.get("op"), message.get("args", {})
            if not isinstance(args, dict):
                raise wire.WireError("args must be an object")
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) and op.isidentifier() else None
            if handler is None:
                raise wire.WireError(f"unknown op {op!r}")
            result = await handler(args)
            self.send({"id": rid, "ok": True, "result": result})
        except HvError as e:
            self.send({"id": rid, "ok": False, "error": {"type": type(e).__name__, "message": str(e)}})
        except Exception as e:      # a bug of the monitor: an error reply, the traceback in the log
            log.exception("request %r failed", line[:200])
            self.send({"id": rid, "ok": False, "error": {
                "type": "HvError", "message": f"the monitor failed: {type(e).__name__}: {e} (see {paths.monitor_log()})"}})
        finally:
            self.inflight.release()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.wakeup.set()
        self.room.set()
        for unwatch in self.watches.values():
            with contextlib.suppress(Exception):
                unwatch()
        self.watches.clear()
        with contextlib.suppress(Exception):
            self.writer.close()
        self.server.sessions.discard(self)


    # ---- the ops: one per api.Monitor command ----
    @property
    def monitor(self) -> HostMonitor:
        return self.server.monitor

    def _view(self, name: str):
        g = self.monitor.guest(name)
        return api.to_wire(g) if g is not None else None

    async def op_hello(self, args: dict):
        """Start receiving events; the guests as they are now (atomically with it)."""
        self.subscribed = True
        return {"protocol": wire.PROTOCOL, "pid": os.getpid(),
                "guests": [api.to_wire(g) for g in self.monitor.guests()]}

    async def op_list(self, args: dict):
        return [api.to_wire(g) for g in self.monitor.guests()]

    async def op_get(self, args: dict):
        return api.to_wire(self.monitor.view(wire.arg(args, "name", str)))

    async def op_create(self, args: dict):
        spec = api.spec_from_wire(wire.arg(args, "spec", dict))
        return api.to_wire(await self.monitor.create(spec, start=wire.arg(args, "start", bool, True)))

    async def _lifecycle(self, args: dict, method) -> dict | None:
        name = wire.arg(args, "name", str)
        await method(name)
        return self._view(name)

    async def op_start(self, args):
        return await self._lifecycle(args, self.monitor.start)

    async def op_pause(self, args):
        return await self._lifecycle(args, self.monitor.pause)

    async def op_resume(self, args):
        return await self._lifecycle(args, self.monitor.resume)

    async def op_stop(self, args):
        return await self._lifecycle(args, self.monitor.stop)

    async def op_kill(self, args):
        return await self._lifecycle(args, self.monitor.kill)

    async def op_reset(self, args):
        return await self._lifecycle(args, self.monitor.reset)

    async def op_remove(self, args):
        return await self._lifecycle(args, self.monitor.remove)

    async def op_snapshot(self, args):
        return await self.monitor.snapshot(wire.arg(args, "name", str), wire.arg(args, "path", str))

    async def op_restore(self, args):
        view = await self.monitor.restore(wire.arg(args, "path", str), wire.arg(args, "name", str, None),
                                          start=wire.arg(args, "start", bool, True),
                                          disk=wire.arg(args, "disk", str, None),
                                          disk_readonly=wire.arg(args, "disk_readonly", bool, False),
                                          overcommit=wire.arg(args, "overcommit", bool, False))
        return api.to_wire(view)

    async def op_clone(self, args):
        names = wire.arg(args, "names", list)
        if not names or not all(isinstance(n, str) for n in names) or len(names) > 64:
            raise wire.WireError("names: 1 to 64 guest names")
        views = await self.monitor.clone(wire.arg(args, "name", str), names, wire.arg(args, "path", str, None))
        return [api.to_wire(v) for v in views]

    async def op_watch(self, args):
        """Follow a console: its last `replay` bytes in the reply, then its output as
        {"console": {"watch": id, "data": ...}} messages, in order."""
        name, console = wire.arg(args, "name", str), wire.arg(args, "console", str, api.SERIAL)
        wid = wire.arg(args, "watch", int)
        replay = max(0, min(wire.arg(args, "replay", int, 0), 1 << 20))
        if wid in self.watches:
            raise wire.WireError(f"watch {wid} exists already")
        if len(self.watches) >= MAX_WATCHES:
            raise wire.WireError(f"at most {MAX_WATCHES} console watches per client")
        first: list[bytes] = []

        def forward(data: bytes) -> None:
            if first is not None and not started[0]:
                first.append(data)
                return
            self.send({"console": {"watch": wid, "data": wire.b64(data)}}, "console")
        started = [False]
        self.watches[wid] = self.monitor.watch_console(name, console, forward, replay=replay,
                                                       attach=wire.arg(args, "attach", bool, False))
        started[0] = True
        return {"history": wire.b64(b"".join(first))}

    async def op_unwatch(self, args):
        unwatch = self.watches.pop(wire.arg(args, "watch", int), None)
        if unwatch:
            unwatch()

    async def op_history(self, args):
        data = await self.monitor.console_history(wire.arg(args, "name", str), wire.arg(args, "console", str, api.SERIAL),
                                                  min(wire.arg(args, "max_bytes", int, 1 << 20), 1 << 20))
        return wire.b64(data)

    async def op_input(self, args):
        data = wire.unb64(wire.arg(args, "data", str))
        return await self.monitor.send_input(wire.arg(args, "name", str), data, wire.arg(args, "console", str, api.SERIAL))

    async def op_log(self, args):
        data = await self.monitor.read_log(wire.arg(args, "name", str), wire.arg(args, "offset", int, 0),
                                           min(wire.arg(args, "limit", int, 1 << 20), 1 << 20),
                                           wire.arg(args, "console", str, api.SERIAL), wire.arg(args, "run", int, None))
        return wire.b64(data)

    async def op_screen(self, args):
        return api.screen_to_wire(await self.monitor.screen(wire.arg(args, "name", str),
                                                            wire.arg(args, "console", str, api.VGA)))

    async def op_keys(self, args):
        keys = wire.arg(args, "keys", list)
        if len(keys) > 65536 or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 1 << 16
                                        for k in keys):
            raise wire.WireError("keys: up to 65536 key codes, each a whole number from 0 to 65535")
        return await self.monitor.send_keys(wire.arg(args, "name", str), keys)

    async def op_gdb(self, args):
        line = await self.monitor.gdb(wire.arg(args, "name", str), wire.arg(args, "address", str, None),
                                      wire.arg(args, "wait", bool, False))
        return {"target_remote": line, "guest": self._view(wire.arg(args, "name", str))}

    async def op_report(self, args):
        await self.monitor.report(wire.arg(args, "text", str))

    async def op_shutdown(self, args):
        log.info("kill-server asked by a client")
        asyncio.get_running_loop().call_soon(self.server.stop.set)


class Server:
    def __init__(self, socket_path: Path | None = None, log_dir: Path | None = None,
                 sample_interval: float = 0.5, vcpu_nice: int = 19, console_nice: int = 10,
                 log_max_bytes: int = logs.DEFAULT_MAX_BYTES, log_keep: int = logs.DEFAULT_KEEP):
        self.socket_path = Path(socket_path or paths.socket_path())
        self.lock_path = self.socket_path.with_name("monitor.lock")
        self.host = Host(log_dir=log_dir or paths.log_dir(), sample_interval=sample_interval,
                         vcpu_nice=vcpu_nice, console_nice=console_nice,
                         log_max_bytes=log_max_bytes, log_keep=log_keep)
        self.monitor = HostMonitor(self.host, on_shutdown=lambda: self.stop.set())
        self.monitor.embedded = False
        self.monitor.log_file = str(self.host.log_dir / logs.MONITOR_LOG)
        self.sessions: set[Session] = set()
        self.stop = asyncio.Event()
        self.host.subscribe(self.on_event)
        self._lock_fd = -1
        self._server: asyncio.AbstractServer | None = None

    def on_event(self, event: api.Event) -> None:
        """Every event to every subscribed client, encoded once."""
        listeners = [s for s in self.sessions if s.subscribed and not s.closed]
        if not listeners:
            return
        try:
            line = wire.encode({"event": api.to_wire(event)})
        except wire.WireError as e:
            log.warning("an event too large to send: %s", e)
            return
        kind = "stats" if isinstance(event, api.StatsTick) else "event"
        for s in listeners:
            s.send_line(line, kind)

    def take_lock(self) -> bool:
        """The user's one monitor: False when another holds the lock (it is running)."""
        prepare_runtime_dir(self.socket_path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    async def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()        # a stale socket: its monitor is gone (we hold the lock)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path),
                                                           limit=wire.MAX_MESSAGE)
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)
        self.host.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock)
        except OSError:
            uid = -1
        refusal = None
        if uid != os.getuid():
            log.warning("refused a connection from uid %s", uid)
            refusal = f"this monitor belongs to uid {os.getuid()}; you are uid {uid}"
        elif len(self.sessions) >= MAX_CLIENTS:
            refusal = f"the monitor has {MAX_CLIENTS} clients already; close one"
        if refusal:
            with contextlib.suppress(Exception):
                writer.write(wire.encode({"id": None, "ok": False, "error": {"type": "ServerError",
                                                                            "message": refusal}}))
                await writer.drain()
                # what it sent meanwhile is read first: closing on unread bytes would reset
                # the connection, and the client would lose the line saying why
                await asyncio.wait_for(reader.read(1 << 16), 0.2)
            with contextlib.suppress(Exception):
                writer.close()
            return
        session = Session(self, reader, writer)
        self.sessions.add(session)
        writer_task = asyncio.get_running_loop().create_task(session.write_forever())
        await session.read_forever()
        writer_task.cancel()

    async def serve_until_stopped(self) -> None:
        await self.stop.wait()
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        await self.host.close()            # every guest ends; their logs are closed
        for s in list(self.sessions):
            await s.drain_and_close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


async def _main(detach: bool, quiet: bool, vcpu_nice: int, console_nice: int, log_max_bytes: int,
                log_keep: int) -> int:
    server = Server(vcpu_nice=vcpu_nice, console_nice=console_nice, log_max_bytes=log_max_bytes, log_keep=log_keep)
    if not server.take_lock():
        print(f"hvtui: a monitor is already running ({server.socket_path})", file=sys.stderr)
        return 1
    await server.listen()
    log.info("monitor %d listening on %s", os.getpid(), server.socket_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, server.stop.set)
    if detach:                                 # the starter may go; we are on our own
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
    if not quiet and not detach:
        print(f"hvtui: monitor {os.getpid()} on {server.socket_path} (logs in {paths.monitor_log()})",
              file=sys.stderr, flush=True)
    await server.serve_until_stopped()
    log.info("monitor %d stopped", os.getpid())
    return 0


def main(detach: bool = False, quiet: bool = False, vcpu_nice: int = 19, console_nice: int = 10,
         log_max_bytes: int = logs.DEFAULT_MAX_BYTES, log_keep: int = logs.DEFAULT_KEEP) -> int:
    """`hvtui serve`: run the monitor here until kill-server or a signal."""
    from hvtui.vmm.kvm import Kvm
    Kvm.get()                              # no KVM: one line now, not a daemon that cannot work
    api.log_to_file()
    return asyncio.run(_main(detach, quiet, vcpu_nice, console_nice, log_max_bytes, log_keep))
