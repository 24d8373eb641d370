"""The virtio-mmio transport, version 2 (virtio 1.1 §4.2.2): registers, the status
machine, feature negotiation and the queues of one device.

The device behind it implements `device_id`, `features`, `num_queues`, `config` (bytes),
`process(queue_index, queue, memory) -> bool` (True when it returned buffers) and
optionally `reset()`, `save()`, `restore()`. An empty slot (device None) reads DeviceID 0.
A bad negotiation or a malformed ring sets DEVICE_NEEDS_RESET and raises the config
interrupt; the device then serves nothing until the driver resets it. The lock makes the
vCPU threads' register accesses and the worker's queue servicing take turns.
"""
from __future__ import annotations

import collections
import threading

from hvtui.vmm.devices.virtio.queue import SplitQueue, VirtqueueError

MAGIC = 0x74726976            # "virt"
VERSION = 2
VENDOR_ID = 0x48565455        # "UTVH"
QUEUE_MAX = 256
SLOT_SIZE = 0x1000
FAILURES_KEPT = 8             # reasons kept for the host; a guest looping on a failure adds no more

S_ACKNOWLEDGE, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET, S_FAILED = 1, 2, 4, 8, 0x40, 0x80
F_VERSION_1 = 1 << 32
INT_USED, INT_CONFIG = 1, 2

(R_MAGIC, R_VERSION, R_DEVICE_ID, R_VENDOR_ID, R_DEVICE_FEATURES, R_DEVICE_FEATURES_SEL,
 R_DRIVER_FEATURES, R_DRIVER_FEATURES_SEL, R_QUEUE_SEL, R_QUEUE_NUM_MAX, R_QUEUE_NUM,
 R_QUEUE_READY, R_QUEUE_NOTIFY, R_INTERRUPT_STATUS, R_INTERRUPT_ACK, R_STATUS,
 R_QUEUE_DESC_LOW, R_QUEUE_DESC_HIGH, R_QUEUE_DRIVER_LOW, R_QUEUE_DRIVER_HIGH,
 R_QUEUE_DEVICE_LOW, R_QUEUE_DEVICE_HIGH, R_CONFIG_GENERATION, R_CONFIG) = (
    0x000, 0x004, 0x008, 0x00C, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050,
    0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4, 0x0FC, 0x100)


class VirtioMmio:
    def __init__(self, device, memory, raise_irq=lambda: None):
        self.device = device
        self.memory = memory
        self.raise_irq = raise_irq
        self.lock = threading.RLock()
        self.failures: collections.deque[str] = collections.deque(maxlen=FAILURES_KEPT)  # latest reasons
        self.failure_count = 0               # every failure, counted
        self.register_notifies = 0           # QueueNotify writes that exited (no ioeventfd took them)
        n = device.num_queues if device else 0
        self.queues = [SplitQueue(QUEUE_MAX) for _ in range(n)]
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.interrupt_status = 0
        self.config_generation = 0
        for q in self.queues:
            q.reset()
        if self.device is not None and hasattr(self.device, "reset"):
            self.device.reset()

    @property
    def device_features(self) -> int:
        return (self.device.features | F_VERSION_1) if self.device else 0

    @property
    def needs_reset(self) -> bool:
        return bool(self.status & S_NEEDS_RESET)

    def _fail(self, why: str) -> None:
        """The driver broke the protocol: NEEDS_RESET, config interrupt, serve nothing more.
        The reason is kept for the host among the last FAILURES_KEPT (a guest can fail a
        negotiation in a loop: memory must not grow with it)."""
        self.failure_count += 1
        self.failures.append(why)
        self.status |= S_NEEDS_RESET
        self.interrupt_status |= INT_CONFIG
        self.raise_irq()

    def _queue(self) -> SplitQueue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    # ---- registers ----
    def read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset >= R_CONFIG:
                config = self.device.config if self.device else b""
                start = offset - R_CONFIG
                chunk = config[start:start + size]
                return int.from_bytes(chunk.ljust(size, b"\0"), "little")
            if size != 4:
                return 0
            if self.device is None:   # an empty slot: magic and version, DeviceID 0
                return {R_MAGIC: MAGIC, R_VERSION: VERSION}.get(offset, 0)
            q = self._queue()
            if offset == R_MAGIC:
                return MAGIC
            if offset == R_VERSION:
                return VERSION
            if offset == R_DEVICE_ID:
                return self.device.device_id
            if offset == R_VENDOR_ID:
                return VENDOR_ID
            if offset == R_DEVICE_FEATURES:
                return (self.device_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF \
                    if self.device_features_sel < 2 else 0
            if offset == R_QUEUE_NUM_MAX:
                return q.max_size if q else 0
            if offset == R_QUEUE_READY:
                return int(q.ready) if q else 0
            if offset == R_INTERRUPT_STATUS:
                return self.interrupt_status
            if offset == R_STATUS:
                return self.status
            if offset == R_CONFIG_GENERATION:
                return self.config_generation
            return 0

    def write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            if self.device is None or size != 4 or offset >= R_CONFIG:
                return            # config space is read-only for our devices
            q = self._queue()
            if offset == R_DEVICE_FEATURES_SEL:
                self.device_features_sel = value
            elif offset == R_DRIVER_FEATURES_SEL:
                self.driver_features_sel = value
            elif offset == R_DRIVER_FEATURES:
                if self.driver_features_sel < 2 and not self.status & S_FEATURES_OK:
                    shift = 32 * self.driver_features_sel
                    self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)
            elif offset == R_QUEUE_SEL:
                self.queue_sel = value
            elif offset == R_QUEUE_NOTIFY:
                self.register_notifies += 1
                self._notify(value)      # only when no ioeventfd took the write
            elif offset == R_INTERRUPT_ACK:
                self.interrupt_status &= ~value
            elif offset == R_STATUS:
                self._write_status(value)
            elif q is not None and not q.ready:
                self._write_queue(q, offset, value)
            elif q is not None and offset == R_QUEUE_READY and value == 0:
                q.ready = False

    def _write_queue(self, q: SplitQueue, offset: int, value: int) -> None:
        lo, hi = 0xFFFFFFFF, 0xFFFFFFFF << 32
        try:
            if offset == R_QUEUE_NUM:
                q.set_size(value)
            elif offset == R_QUEUE_DESC_LOW:
                q.desc = (q.desc & hi) | value
            elif offset == R_QUEUE_DESC_HIGH:
                q.desc = (q.desc & lo) | (value << 32)
            elif offset == R_QUEUE_DRIVER_LOW:
                q.avail = (q.avail & hi) | value
            elif offset == R_QUEUE_DRIVER_HIGH:
                q.avail = (q.avail & lo) | (value << 32)
            elif offset == R_QUEUE_DEVICE_LOW:
                q.used = (q.used & hi) | value
            elif offset == R_QUEUE_DEVICE_HIGH:
                q.used = (q.used & lo) | (value << 32)
            elif offset == R_QUEUE_READY and value == 1:
                q.activate(self.memory)
        except VirtqueueError as e:
            self._fail(str(e))

    def _write_status(self, value: int) -> None:
        if value == 0:
            self._reset()
            return
        if value & S_FEATURES_OK and not self.status & S_FEATURES_OK:
            offered = self.device_features
            if self.driver_features & ~offered or not self.driver_features & F_VERSION_1:
                extra = self.driver_features & ~offered
                self._fail(f"bad feature negotiation: driver features {self.driver_features:#x} "
                           f"({'not offered ' + hex(extra) if extra else 'no VERSION_1'})")
                value &= ~S_FEATURES_OK
        if value & S_DRIVER_OK and not value & S_FEATURES_OK:
            value &= ~S_DRIVER_OK
        self.status = (self.status & S_NEEDS_RESET) | value

    # ---- queue service (the worker thread, on an ioeventfd) ----
    def notify(self, index: int) -> None:
        with self.lock:
            self._notify(index)

    def _notify(self, index: int) -> None:
        if self.needs_reset or not self.status & S_DRIVER_OK or index >= len(self.queues):
            return
        try:
            used = self.device.process(index, self.queues[index], self.memory)
        except VirtqueueError as e:
            self._fail(str(e))
            return
        except Exception as e:     # a device bug or a host I/O error fails this device only
            self._fail(f"{type(e).__name__}: {e}")
            return
        if used:
            self.interrupt_status |= INT_USED
            self.raise_irq()

    # ---- snapshots ----
    def save(self) -> dict:
        with self.lock:
            return {
                "status": self.status, "driver_features": self.driver_features,
                "device_features_sel": self.device_features_sel,
                "driver_features_sel": self.driver_features_sel, "queue_sel": self.queue_sel,
                "interrupt_status": self.interrupt_status, "queues": [q.save() for q in self.queues],
                "device": self.device.save() if self.device is not None and hasattr(self.device, "save") else None,
            }

    STATE_KEYS = ("status", "driver_features", "device_features_sel", "driver_features_sel", "queue_sel",
                  "interrupt_status", "queues", "device")

    def restore(self, state: dict) -> None:
        """Checked as strictly as the live register writes: the status a driver can reach
        (DRIVER_OK only with FEATURES_OK, accepted features offered and VERSION_1), each
        queue as QueueReady checks it (vmm/devices/virtio/queue.py), the device's own state."""
        from hvtui.errors import SnapshotError
        from hvtui.vmm.devices import saved
        what = "virtio-mmio"
        saved.fields(state, self.STATE_KEYS, what)
        regs = {k: saved.integer(state, k, 0, hi, what) for k, hi in (
            ("status", 0xFF), ("driver_features", (1 << 64) - 1), ("device_features_sel", 0xFFFFFFFF),
            ("driver_features_sel", 0xFFFFFFFF), ("queue_sel", 0xFFFFFFFF),
            ("interrupt_status", INT_USED | INT_CONFIG))}
        status, features = regs["status"], regs["driver_features"]
        if status & S_DRIVER_OK and not status & S_FEATURES_OK:
            raise SnapshotError(f"{what} state: status {status:#x} has DRIVER_OK without FEATURES_OK")
        if status & S_FEATURES_OK and (features & ~self.device_features or not features & F_VERSION_1):
            raise SnapshotError(f"{what} state: accepted features {features:#x} were not offered "
                                f"({self.device_features:#x}) or lack VERSION_1")
        if self.device is None and (status or state["queues"] or state["device"] is not None):
            raise SnapshotError(f"{what} state: an empty slot with a driver's state")
        queues = state["queues"]
        if not isinstance(queues, list) or len(queues) != len(self.queues):
            raise SnapshotError(f"{what} state: {len(self.queues)} queues expected")
        with self.lock:
            for i, (q, saved_q) in enumerate(zip(self.queues, queues)):
                probe = SplitQueue(q.max_size)
                try:
                    probe.restore(saved_q, self.memory)
                except VirtqueueError as e:
                    raise SnapshotError(f"{what} state: queue {i}: {e}") from None
            device_state = state["device"]
            if device_state is not None and not hasattr(self.device, "restore"):
                raise SnapshotError(f"{what} state: the device keeps no state, the snapshot has some")
            if device_state is not None:
                self.device.restore(device_state)
            for k, v in regs.items():
                setattr(self, k, v)
            for q, saved_q in zip(self.queues, queues):
                q.restore(saved_q, self.memory)
