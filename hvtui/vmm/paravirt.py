"""Wiring of the paravirtual devices to KVM: every virtio-mmio slot's queue notify becomes
an ioeventfd (the guest's write does not exit to user space), its interrupt an irqfd, and
one worker thread per machine services the queues off the vCPU threads.

The devices themselves (devices/virtio/) know nothing of this; the worker only calls
transport.notify(queue) when KVM signals that queue's eventfd.
"""
from __future__ import annotations

import contextlib
import os
import select
import threading

from hvtui.vmm import layout
from hvtui.vmm.devices.virtio.mmio import R_QUEUE_NOTIFY, SLOT_SIZE, VirtioMmio

SLOTS = 8
FIRST_IRQ = 5


def slot_base(index: int) -> int:
    return layout.VIRTIO_MMIO_BASE + index * SLOT_SIZE


class Paravirt:
    """The virtio-mmio slots of one machine and the worker serving them."""

    def __init__(self, vm, memory):
        self.vm = vm
        self.memory = memory
        self.transports: list[VirtioMmio] = []
        self._fds: list[int] = []
        self._notify: dict[int, tuple[VirtioMmio, int]] = {}   # eventfd -> (transport, queue)
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._fds.append(self._wake)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._kicks: dict[tuple[VirtioMmio, int], None] = {}   # queues to look at, each once

    def add(self, index: int, device) -> VirtioMmio:
        """Put device (or None: an empty slot) in slot index; returns its transport."""
        base = slot_base(index)
        irq_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._fds.append(irq_fd)
        transport = VirtioMmio(device, self.memory, raise_irq=lambda fd=irq_fd: os.eventfd_write(fd, 1))
        if device is not None:
            self.vm.irqfd(irq_fd, FIRST_IRQ + index)
            for q in range(device.num_queues):
                fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                self._fds.append(fd)
                self.vm.ioeventfd(base + R_QUEUE_NOTIFY, 4, fd, datamatch=q)
                self._notify[fd] = (transport, q)
        self.transports.append(transport)
        return transport

    def kick(self, transport: VirtioMmio, queue: int) -> None:
        """Have the worker service a queue (host-side input arrived for it)."""
        with self._lock:
            self._kicks[(transport, queue)] = None
        os.eventfd_write(self._wake, 1)

    @contextlib.contextmanager
    def quiesced(self):
        """Hold every transport still: the worker finishes the request it is serving and
        waits, so guest RAM and device state stay as they are (snapshots)."""
        with contextlib.ExitStack() as stack:
            for t in self.transports:
                stack.enter_context(t.lock)
            yield

    def start(self, name: str) -> None:
        """Start the worker. It first looks at every queue once: a restored machine may hold
        requests whose notify went to the eventfds of the machine it was saved from."""
        for t in self.transports:
            for q in range(len(t.queues)):
                self._kicks[(t, q)] = None
        if self._kicks:
            os.eventfd_write(self._wake, 1)
        if self._notify and self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=f"{name}/virtio", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        poller = select.poll()
        for fd in [self._wake, *self._notify]:
            poller.register(fd, select.POLLIN)
        while not self._stop:
            for fd, _ in poller.poll():
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    continue
                if fd == self._wake:
                    with self._lock:
                        kicks, self._kicks = list(self._kicks), {}
                    for transport, queue in kicks:
                        transport.notify(queue)
                else:
                    transport, queue = self._notify[fd]
                    transport.notify(queue)

    def close(self) -> None:
        self._stop = True
        os.eventfd_write(self._wake, 1)
        if self._thread is not None:
            self._thread.join(2.0)
        for fd in self._fds:
            os.close(fd)
        self._fds = []
