"""virtio over MMIO (virtio 1.1, §4.2, version 2): the transport, split virtqueues and the
devices behind them (blk, console). Pure state machines over a GuestMemory: no KVM, no
threads of their own; hvtui/vmm/paravirt.py wires them to ioeventfd, irqfd and a worker."""
