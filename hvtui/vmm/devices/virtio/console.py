"""virtio-console (virtio 1.1 §5.3), one port, no multiport: queue 0 carries host input
to the guest (receiveq), queue 1 the guest's output to the host (transmitq).

Output goes to `on_output(bytes)`; input waits in a bounded buffer until the guest has
posted receive buffers for it. The transport's lock is held around every call."""
from __future__ import annotations

RECEIVEQ, TRANSMITQ = 0, 1
INPUT_LIMIT = 64 * 1024


class VirtioConsole:
    device_id = 3
    num_queues = 2
    features = 0
    config = b"\0" * 12        # cols, rows, max_nr_ports, emerg_wr: unused without the features

    def __init__(self, on_output=lambda data: None):
        self.on_output = on_output
        self.pending = bytearray()
        self.dropped_input = 0

    def reset(self) -> None:
        self.pending.clear()

    def feed(self, data: bytes) -> int:
        """Host input, up to INPUT_LIMIT waiting; returns how many bytes were taken. Call
        process(RECEIVEQ, ...) afterwards to deliver what fits."""
        room = max(0, INPUT_LIMIT - len(self.pending))
        self.pending += data[:room]
        self.dropped_input += max(0, len(data) - room)
        return min(room, len(data))

    def process(self, index: int, queue, memory) -> bool:
        if index == TRANSMITQ:
            return self._transmit(queue, memory)
        return self._receive(queue, memory)

    def _transmit(self, queue, memory) -> bool:
        used = False
        while (chain := queue.pop(memory)) is not None:
            data = b"".join(memory.read(b.addr, b.length) for b in chain.readable)
            queue.push_used(memory, chain.head, 0)
            if data:
                self.on_output(data)
            used = True
        return used

    def _receive(self, queue, memory) -> bool:
        used = False
        while self.pending and (chain := queue.pop(memory)) is not None:
            n = 0
            for b in chain.writable:
                chunk = self.pending[n:n + b.length]
                if not chunk:
                    break
                memory.write(b.addr, bytes(chunk))
                n += len(chunk)
            del self.pending[:n]
            queue.push_used(memory, chain.head, n)
            used = True
        return used

    def save(self) -> dict:
        return {"pending": self.pending.hex()}

    def restore(self, state: dict) -> None:
        from hvtui.vmm.devices import saved
        saved.fields(state, ("pending",), "virtio-console")
        self.pending = bytearray(saved.hex_bytes(state, "pending", INPUT_LIMIT, "virtio-console"))
