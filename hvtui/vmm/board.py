"""The devices of one machine that Python serves, and their wiring: the PC's cold
devices (CMOS/RTC 0x70, PCI configuration 0xcf8 answering "no device" with the reset
register 0xcf9, fw_cfg 0x510, the ACPI PM block 0x600, VGA text mode's registers
0x3b0-0x3df), the scratch register
(0x524), the emulated ATA disk on the legacy ports (with a disk), the 8 virtio-mmio slots
(0: virtio-blk on the disk, 1: virtio-console, the rest empty) with their ioeventfds,
irqfds and worker (paravirt.py), and the virtio-console's output buffer and eventfd.

Built the same way for a new machine and a restored one (the machine's restore_state then
gives every device its saved state). The hot devices (COM1, debug exit, i8042) are in C.
"""
from __future__ import annotations

import os
import threading

from hvtui.errors import ConfigError
from hvtui.vmm import paravirt
from hvtui.vmm.devices import ata
from hvtui.vmm.devices.acpi_pm import AcpiPm
from hvtui.vmm.devices.ata import AtaControl, AtaDisk
from hvtui.vmm.devices.cmos import CmosRtc
from hvtui.vmm.devices.fw_cfg import FwCfg
from hvtui.vmm.devices.pci import PciConfigAbsent
from hvtui.vmm.devices.scratch import ScratchRegister
from hvtui.vmm.devices import vga
from hvtui.vmm.devices.virtio.blk import DiskFile, VirtioBlk
from hvtui.vmm.devices.virtio.console import RECEIVEQ, VirtioConsole
from hvtui.vmm.devices.virtio.mmio import SLOT_SIZE
from hvtui.vmm.paravirt import Paravirt

PYDEV_PORT = 0x524          # the ScratchRegister (guests/lib/hvboot.h HV_PORT_PYDEV)
HVC_BUFFER = 1 << 20        # virtio-console output held for the host, at most


CMOS_PORT, PCI_PORT, FW_CFG_PORT, ACPI_PM_PORT = 0x70, 0xCF8, 0x510, 0x600


class Board:
    def __init__(self, vm, memory, add_port, add_mmio, ram: tuple[int, int, int], vcpus: int,
                 on_power, disk: str | None = None, disk_readonly: bool = False):
        """add_port(base, size, device) and add_mmio(base, size, device) put a device on
        the machine's buses (and claim its ports from the C core); ram is (total, low
        end, high size); on_power(reason) ends the machine (poweroff or reset)."""
        self.vm = vm
        self.scratch = ScratchRegister()
        self.vga = vga.VgaText()
        self.disk: DiskFile | None = None
        self.ata: AtaDisk | None = None
        self.hvc_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._hvc_lock = threading.Lock()
        self._hvc_out = bytearray()
        self.paravirt = Paravirt(vm, memory)
        try:
            total, low, high = ram
            add_port(CMOS_PORT, 2, CmosRtc(total, low, high, vcpus))
            add_port(PCI_PORT, 8, PciConfigAbsent(on_reset=lambda: on_power("reset (port 0xcf9)")))
            add_port(FW_CFG_PORT, 2, FwCfg(total, vcpus))
            add_port(ACPI_PM_PORT, 12, AcpiPm(on_poweroff=lambda: on_power("poweroff (ACPI)")))
            add_port(PYDEV_PORT, ScratchRegister.SIZE, self.scratch)
            add_port(vga.BASE, vga.SIZE, self.vga)
            if disk:
                try:
                    self.disk = DiskFile(disk, disk_readonly)
                except OSError as e:
                    raise ConfigError(f"disk {disk}: {e.strerror}") from None
                if self.disk.sectors == 0:
                    raise ConfigError(f"disk {disk} is smaller than one 512-byte sector")
                self.ata = AtaDisk(self.disk, raise_irq=self._pulse_ata_irq)
                add_port(ata.BASE, 8, self.ata)
                add_port(ata.CONTROL_PORT, 1, AtaControl(self.ata))
            self.hvc = VirtioConsole(on_output=self._hvc_output)
            for i in range(paravirt.SLOTS):
                device = VirtioBlk(self.disk) if i == 0 and self.disk else self.hvc if i == 1 else None
                add_mmio(paravirt.slot_base(i), SLOT_SIZE, self.paravirt.add(i, device))
        except BaseException:
            self.close()
            raise

    def _pulse_ata_irq(self) -> None:
        self.vm.irq_line(ata.IRQ, 1)
        self.vm.irq_line(ata.IRQ, 0)

    def _hvc_output(self, data: bytes) -> None:
        """virtio-console output, on the virtio worker: buffer it and wake the host's reader."""
        with self._hvc_lock:
            self._hvc_out += data
            if len(self._hvc_out) > HVC_BUFFER:
                del self._hvc_out[:len(self._hvc_out) - HVC_BUFFER]
        os.eventfd_write(self.hvc_fd, 1)

    def read_hvc(self) -> bytes:
        """Drain what the guest wrote to its virtio-console since the last call."""
        try:
            os.eventfd_read(self.hvc_fd)
        except OSError:
            pass
        with self._hvc_lock:
            data, self._hvc_out = bytes(self._hvc_out), bytearray()
        return data

    def push_hvc_input(self, data: bytes) -> int:
        """Host input for the virtio-console (held until the guest posts receive buffers, at
        most its INPUT_LIMIT); returns how many bytes it took."""
        transport = self.paravirt.transports[1]
        with transport.lock:
            taken = self.hvc.feed(data)
        self.paravirt.kick(transport, RECEIVEQ)
        self.vm.wake_idle()
        return taken

    def virtio_devices(self) -> list[tuple[int, int]]:
        """(MMIO base, IRQ) of each virtio-mmio slot that holds a device."""
        return [(paravirt.slot_base(i), paravirt.FIRST_IRQ + i)
                for i, t in enumerate(self.paravirt.transports) if t.device is not None]

    def device_failures(self) -> list[str]:
        """Why any virtio device asked for a reset (a guest that handed it a bad ring): the
        latest reasons each transport keeps, and how many more there were."""
        out = []
        for i, t in enumerate(self.paravirt.transports):
            out += [f"virtio slot {i}: {why}" for why in t.failures]
            if t.failure_count > len(t.failures):
                out.append(f"virtio slot {i}: {t.failure_count - len(t.failures)} earlier failure(s)")
        return out

    def start(self, name: str) -> None:
        self.paravirt.start(name)

    def quiesced(self):
        return self.paravirt.quiesced()

    def close(self) -> None:
        self.paravirt.close()
        if self.disk is not None:
            self.disk.close()
            self.disk = None
        if self.hvc_fd >= 0:
            os.close(self.hvc_fd)
            self.hvc_fd = -1
