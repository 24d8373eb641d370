"""stdin to a guest's COM1 for `hvtui run` and `hvtui restore`, read only as fast as the
guest takes it, and what the end of piped input means.

Backpressure: the Host queues at most INPUT_LIMIT bytes of COM1 input per guest; the pump
reads stdin only when there is room, so `head -c 3G /dev/zero | hvtui run counter` holds
a few KiB in the monitor while `head` waits on a full pipe, however fast it writes.

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

CHUNK = 4096
POLL_S = 0.05


def eof_means_done(fd: int) -> bool:
    """Whether the end of this stdin ends the user's input (pipe, FIFO, socket, file)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode)


class StdinPump:
    def __init__(self, host, name: str, fd: int, interactive: bool, detach_key: bytes,
                 eof: str = "stop", grace: float = 2.0, deliver=None):
        """deliver(data): where the bytes go (default: the guest's COM1; `--console vga`
        gives them to its keyboard instead)."""
        self.host, self.name, self.fd = host, name, fd
        self.deliver = deliver or (lambda data: host.send_input(name, data))
        self._go = asyncio.Event()              # cleared while the receiver asks for a pause
        self._go.set()
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

    def pause(self) -> None:
        """Read no more until resume() (the receiver's own queue is full)."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="hvtui-stdin")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)

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
        guest = self.host.get(self.name)
        while guest.state.live:
            await self._go.wait()
            await self.host.wait_input_room(self.name)
            if not guest.state.live:
                return
            await self._readable()
            try:
                data = os.read(self.fd, min(CHUNK, max(1, self.host.input_room(self.name))))
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.ended_input = True
                if self.stop_on_eof and self.bytes_read:
                    await self._after_end_of_input(guest)
                return
            self.bytes_read += len(data)
            if self.interactive and self.detach_key in data:
                self.detached.set()
                data = data.split(self.detach_key)[0]
            if data and guest.state.live:
                self.deliver(data)
            if self.detached.is_set():
                return

    async def _after_end_of_input(self, guest) -> None:
        """Wait for the guest to read its input (or to stop reading it), then the grace period."""
        loop = asyncio.get_running_loop()
        last, since = None, loop.time()
        while guest.state.live:
            pending = self.host.input_pending(self.name)
            if pending == 0:
                break
            if pending != last:
                last, since = pending, loop.time()
            elif loop.time() - since >= self.grace:
                break              # it stopped reading: what is left it will never take
            await asyncio.sleep(POLL_S)
        await asyncio.sleep(self.grace)
        self.input_done.set()
