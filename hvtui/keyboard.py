"""The host side of a guest's PS/2 keyboard: keys typed faster than the guest reads them
wait here (the keyboard itself holds 64 bytes) and go in as it makes room.

The queue is bounded: keys that would overflow it are refused whole with one error,
never half-sent or dropped silently. Runs on the Host's asyncio loop.
"""
from __future__ import annotations

import asyncio
import collections
import itertools

from hvtui.errors import StateError

MAX_PENDING = 4096          # keys (a press or a release each) waiting for the guest
BATCH = 64
RETRY_S, RETRY_MAX_S = 0.002, 0.05   # the wait when the keyboard is full, doubling while it stays full


class KeyFeed:
    def __init__(self, machine):
        self.machine = machine
        self.pending: collections.deque[int] = collections.deque()
        self._task: asyncio.Task | None = None

    def send(self, keys: list[int]) -> None:
        """Queue keys (ps2keys codes) for the guest; StateError if there is no room for all."""
        if len(self.pending) + len(keys) > MAX_PENDING:
            raise StateError(f"{self.machine.name} has {len(self.pending)} keys it has not read yet; "
                             f"{len(keys)} more would pass the {MAX_PENDING}-key limit, so none were sent")
        self.pending.extend(keys)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._feed(), name=f"hvtui-keys-{self.machine.name}")

    async def _feed(self) -> None:
        delay = RETRY_S
        while self.pending and self.machine.state.live:
            taken = self.machine.push_keys(list(itertools.islice(self.pending, BATCH)))
            for _ in range(taken):
                self.pending.popleft()
            if self.pending:
                await asyncio.sleep(delay)
                delay = RETRY_S if taken else min(delay * 2, RETRY_MAX_S)
        if not self.machine.state.live:
            self.pending.clear()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.pending.clear()
