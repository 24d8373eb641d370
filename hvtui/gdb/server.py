"""The gdb server of one guest on the Host's asyncio loop: listens on [HOST:]PORT, serves
one client at a time (a second one is told so and closed), and closes with its guest.

With wait, every vCPU is held before its first instruction until a debugger lets it go.
"""
from __future__ import annotations

import asyncio
import contextlib

from hvtui import api
from hvtui.api import parse_address  # noqa: F401  (where it was)
from hvtui.errors import ConfigError
from hvtui.gdb.packets import frame
from hvtui.gdb.session import Session
from hvtui.vmm.debug import GuestDebug

REFUSE_WAIT_S = 1.0          # how long a refused client gets to send its first packet
MAX_REFUSING = 8             # refusals in flight; more connections are closed at once


__all__ = ["GdbServer", "parse_address"]


class GdbServer:
    def __init__(self, host, name: str, address: tuple[str, int], wait: bool = False):
        self.host = host
        self.name = name
        self.requested = address
        self.wait = wait
        guest = host.get(name)
        self.machine = guest.machine
        self.debug = GuestDebug(self.machine)
        self.session: Session | None = None
        self.address: tuple[str, int] | None = None
        self.clients = 0
        self._server: asyncio.AbstractServer | None = None
        self._refusing = 0
        self._session_task: asyncio.Task | None = None
        self._unsubscribe = None
        self._closed = False

    async def start(self) -> None:
        if not self.machine.state.live:
            raise ConfigError(f"{self.name} is {self.machine.state.value}: there is nothing to debug")
        bind_host, port = self.requested
        try:
            self._server = await asyncio.start_server(self._on_client, bind_host, port, reuse_address=True)
        except OSError as e:
            raise ConfigError(f"gdb server for {self.name}: cannot listen on {bind_host}:{port}: "
                              f"{e.strerror or e}") from None
        self.address = self._server.sockets[0].getsockname()[:2]
        self._unsubscribe = self.host.subscribe(self._on_host_event)
        if self.wait:
            self.machine.hold()          # before the first instruction, until gdb continues

    @property
    def target_remote(self) -> str:
        host, port = self.address or self.requested
        return f"target remote {f'[{host}]' if ':' in host else host}:{port}"

    @property
    def client(self) -> str | None:
        return self.session.peer if self.session else None

    def _on_host_event(self, event: api.Event) -> None:
        if self.session is None or not isinstance(event, api.GuestChanged) or event.guest.name != self.name:
            return
        if not event.guest.state.live:
            self.session.machine_ended()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.session is not None or self._closed:
            await self._refuse(reader, writer)
            return
        session = self.session = Session(self, reader, writer)
        self._session_task = asyncio.current_task()
        self.clients += 1
        try:
            await session.run()
        finally:
            if self.session is session:
                self.session = None

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Tell a second client why (the reply to its first packet, which gdb prints) and close."""
        if self._refusing >= MAX_REFUSING:
            writer.close()
            return
        self._refusing += 1
        try:
            holder = f" (from {self.session.peer})" if self.session else ""
            message = (f"hvtui: guest {self.name} already has a debugger attached{holder}; "
                       "one at a time" if not self._closed else f"hvtui: the gdb server of {self.name} is closing")
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(reader.read(4096), REFUSE_WAIT_S)
            writer.write(b"+" + frame(b"E." + message.encode()))
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.write_eof()
                await asyncio.wait_for(reader.read(65536), REFUSE_WAIT_S)   # let it read and close first
        finally:
            self._refusing -= 1
            writer.close()

    async def client_gone(self) -> None:
        """Wait until no debugger is attached."""
        while self.session is not None:
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Stop listening, end the client's connection (telling gdb if the guest ended) and
        let the guest run on."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe:
            self._unsubscribe()
        if self._server is not None:
            self._server.close()
        if self.session is not None:
            await self.session.close()
            if self._session_task is not None:     # its detach must finish before the guest goes
                await asyncio.wait({self._session_task}, timeout=10)
        elif self.wait and self.machine.state.live:
            self.machine.release()
