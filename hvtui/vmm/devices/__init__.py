"""Devices as plain state machines: they know nothing of KVM, threads or Textual.

The hot ones (16550A UART, debug exit, i8042) live in C (core/); the ones here are
served in Python through the Bus when a vCPU exits on their ports or MMIO ranges.
"""
