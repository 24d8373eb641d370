"""stdin to a guest's console for `hvtui run` and `hvtui console`, read only as fast as the
guest takes it, and what the end of piped input means. It speaks to the monitor through
the api alone (the same pump serves a monitor in this process and the daemon).

Backpressure: the monitor queues at most INPUT_LIMIT bytes of COM1 input per guest and
send_input says how much it took; the pump reads no more stdin until what it read is in,
so `head -c 3G /dev/zero | hvtui run counter` holds a few KiB in the monitor while `head`
waits on a full pipe, however fast it writes.

End of input: when stdin is a pipe, a FIFO, a socket or a regular file and it ends after
giving the guest something, the user's input is over (as `virsh console` users expect
from a pipe). An empty one (`true | hvtui run ...`, a harness that closes stdin) gave
nothing to wait for and ends nothing, like /dev/null. With the
default `--stdin-eof stop`, the guest is stopped once it has read what it was sent (the
monitor's queue and its UART FIFO are empty, or it took nothing for the grace period:
a guest that never reads) and then `--eof-grace` seconds (2) have passed without it
ending by itself, which is the time it has to answer its last line: so
`printf 'echo hi\\nexit 7\\n' | hvtui run shell` still exits 7. `--stdin-eof keep` lets
it run on. A terminal or /dev/null never ends the guest (Ctrl-D is a byte to the guest).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import stat

from hvtui import api
from hvtui.errors import HvError

CHUNK = 4096
POLL_S = 0.05
RETRY_S, RETRY_MAX_S = 0.002, 0.05     # while the guest's input queue is full, doubling


def eof_means_done(fd: int) -> bool:
    """Whether the end of this stdin ends the user's input (pipe, FIFO, socket, file)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode)


class StdinPump:
    def __init__(self, monitor: api.Monitor, name: str, fd: int, interactive: bool, detach_key: bytes | None,
                 eof: str = "stop", grace: float = 2.0, deliver=None, console: str = api.SERIAL):
        """detach_key: the byte that detaches (None: none); deliver(data): a coroutine that
        returns once the bytes are in (default: the console's input queue; the VGA console
        gives them to its keyboard instead)."""
        self.monitor, self.name, self.fd, self.console = monitor, name, fd, console
        self.deliver = deliver or self._send_input
        self.interactive, self.detach_key = interactive, detach_key
        self.stop_on_eof = eof == "stop" and not interactive and eof_means_done(fd)
        self.grace = grace
        self.detached = asyncio.Event()
        self.input_done = asyncio.Event()     # set when the guest should stop: its input is over
        self.ended_input = False
        self.bytes_read = 0
        self._task: asyncio.Task | None = None
        try:
            self._pollable = not stat.S_ISREG(os.fstat(fd).st_mode)   # epoll refuses regular files
        except OSError:
            self._pollable = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="hvtui-stdin")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)

    def _live(self) -> bool:
        guest = self.monitor.guest(self.name)
        return guest is not None and guest.state.live

    async def _send_input(self, data: bytes) -> None:
        """All of data into the guest's input queue, waiting while it is full."""
        delay = RETRY_S
        while data and self._live():
            taken = await self.monitor.send_input(self.name, data, self.console)
            data = data[taken:]
            if data:
                await asyncio.sleep(delay)
                delay = RETRY_S if taken else min(delay * 2, RETRY_MAX_S)

    async def _readable(self) -> None:
        if not self._pollable:
            return
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        try:
            loop.add_reader(self.fd, lambda: ready.done() or ready.set_result(None))
        except (OSError, ValueError):
            self._pollable = False
            return
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)

    async def _pump(self) -> None:
        while self._live():
            await self._readable()
            try:
                data = await asyncio.to_thread(os.read, self.fd, CHUNK) if not self._pollable \
                    else os.read(self.fd, CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.ended_input = True
                if self.stop_on_eof and self.bytes_read:
                    await self._after_end_of_input()
                return
            self.bytes_read += len(data)
            detach = self.detach_key is not None and self.detach_key in data
            if detach:
                data = data.split(self.detach_key)[0]
            if data and self._live():
                try:
                    await self.deliver(data)    # what came before Ctrl-] still goes
                except HvError:
                    pass
            if detach:
                self.detached.set()
                return

    async def _after_end_of_input(self) -> None:
        """Wait for the guest to read its input (or to stop reading it), then the grace period."""
        loop = asyncio.get_running_loop()
        last, since = None, loop.time()
        while self._live():
            pending = self.monitor.view(self.name).input_pending
            if pending == 0:
                break
            if pending != last:
                last, since = pending, loop.time()
            elif loop.time() - since >= self.grace:
                break              # it stopped reading: what is left it will never take
            await asyncio.sleep(POLL_S)
        await asyncio.sleep(self.grace)
        self.input_done.set()
