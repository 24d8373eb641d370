"""The PC a real kernel expects, seen from inside a guest on real KVM: tiny 32-bit PVH
kernels that read fw_cfg, the CMOS and a port nobody owns, power off through ACPI, reset
through the reset register, and end with QEMU's debug-exit convention."""
import subprocess
import sys

import pytest

import kernels

pytestmark = pytest.mark.kvm

OUT_EAX = bytes([0x0F, 0xB6, 0xC0, 0xE7, 0xF4, 0xF4])          # movzbl %al,%eax; out %eax,$0xf4; hlt


def dx(port: int) -> bytes:
    return bytes([0x66, 0xBA]) + port.to_bytes(2, "little")     # mov $port,%dx


def out_ax(value: int) -> bytes:
    return bytes([0x66, 0xB8]) + value.to_bytes(2, "little") + bytes([0x66, 0xEF])   # mov $v,%ax; out %ax,%dx


def out_al(value: int) -> bytes:
    return bytes([0xB0, value, 0xEE])                           # mov $v,%al; out %al,%dx


IN_AL = bytes([0xEC])                                           # in (%dx),%al
HLT = bytes([0xF4, 0xEB, 0xFD])

PROGRAMS = {
    # fw_cfg: select NB_CPUS (5), read its low byte from the data port
    "fw_cfg cpus": (dx(0x510) + out_ax(5) + dx(0x511) + IN_AL + OUT_EAX, ("--vcpus", "3"), 3),
    # CMOS: register 0x5f is the CPU count - 1; 0x32 the century in BCD
    "cmos cpus": (dx(0x70) + out_al(0x5F) + dx(0x71) + IN_AL + OUT_EAX, ("--vcpus", "2"), 1),
    "cmos century": (dx(0x70) + out_al(0x32) + dx(0x71) + IN_AL + OUT_EAX, (), 0x20),
    # PCI configuration: no device answers, the data window floats high
    "pci absent": (dx(0xCF8) + bytes([0xB8, 0, 0, 0, 0x80, 0xEF]) + dx(0xCFC) + IN_AL + OUT_EAX, (), 0xFF),
    "unowned port": (dx(0x123) + IN_AL + OUT_EAX, (), 0xFF),
}


def run(tmp_path, body: bytes, *args):
    path = tmp_path / "k.elf"
    path.write_bytes(kernels.pvh(body=body))
    cmd = [sys.executable, "-m", "hvtui", "run", str(path), "--log-dir", str(tmp_path), "--timeout", "30",
           "-v", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60)


@pytest.mark.parametrize("what", PROGRAMS)
def test_a_kernel_reads_the_pc_devices(tmp_path, what):
    body, args, status = PROGRAMS[what]
    r = run(tmp_path, body, *args)
    assert r.returncode == status, (what, r.stderr)


def test_acpi_poweroff_stops_the_guest(tmp_path):
    """SLP_TYP 5 (the DSDT's \\_S5) with SLP_EN, written to PM1a_CNT."""
    r = run(tmp_path, dx(0x604) + out_ax(5 << 10 | 1 << 13) + HLT)
    assert r.returncode == 0, r.stderr
    assert b"poweroff (ACPI)" in r.stderr


def test_reset_register_resets_the_guest(tmp_path):
    """The FADT's reset register, port 0xcf9 value 6, as Linux's reboot=a writes it."""
    r = run(tmp_path, dx(0xCF9) + out_al(0x06) + HLT)
    assert r.returncode == 0, r.stderr
    assert b"reset (port 0xcf9)" in r.stderr


def test_exit_code_qemu_convention(tmp_path):
    """--exit-code qemu: a write of v to port 0xf4 ends hvtui with (v << 1) | 1."""
    assert run(tmp_path, kernels.CODE, "--exit-code", "qemu").returncode == (42 << 1) | 1
    assert run(tmp_path, kernels.CODE).returncode == 42


def test_a_pc_guest_snapshots_and_restores(tmp_path):
    """A PVH kernel with 2 vCPUs (the AP still waiting for INIT/SIPI), its CMOS index
    written: snapshot it running, the PC devices are in the file, and the restored guest
    runs on (stopped by --timeout: 124)."""
    spin = dx(0x70) + out_al(0x32) + bytes([0xF3, 0x90, 0xEB, 0xFC])       # then: pause; jmp
    snap = tmp_path / "pc.snap"
    r = run(tmp_path, spin, "--vcpus", "2", "--snapshot-after", "0.5", "--snapshot-to", str(snap),
            "--timeout", "1.5")
    assert r.returncode == 124 and snap.exists(), r.stderr
    info = subprocess.run([sys.executable, "-m", "hvtui", "snapshot", "info", str(snap), "--json"],
                          capture_output=True, timeout=30)
    assert info.returncode == 0 and b"port:0x70" in info.stdout, info.stderr
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", str(snap), "--name", "again",
                        "--log-dir", str(tmp_path), "--timeout", "1"], capture_output=True, timeout=60)
    assert r.returncode == 124, r.stderr


def uart_interrupt_kernel() -> bytes:
    """A PVH kernel with an IDT: the 8259 PIC remapped to vector 0x20 with only IRQ 4
    unmasked, the UART's THR-empty interrupt enabled, then sti; hlt. The handler for
    vector 0x24 writes 0x44 to the debug-exit port: the status says the 16550A's IRQ 4
    reached the CPU through the PIC and the LAPIC in virtual-wire mode."""
    import struct
    base, handler, idt, idtr, vector = 0x100000, 0x80, 0x100, 0x240, 0x24      # kernels.pvh loads at 1 MiB
    pic = b"".join(bytes([0xB0, value, 0xE6, port]) for port, value in (
        (0x20, 0x11), (0xA0, 0x11), (0x21, 0x20), (0xA1, 0x28), (0x21, 0x04), (0xA1, 0x02),
        (0x21, 0x01), (0xA1, 0x01), (0x21, 0xEF), (0xA1, 0xFF)))
    code = (bytes([0xBC]) + struct.pack("<I", base + 0x10000)              # mov $stack,%esp
            + bytes([0x0F, 0x01, 0x1D]) + struct.pack("<I", base + idtr)    # lidt idtr
            + pic + dx(0x3F9) + out_al(0x02)                              # IER: THR empty
            + bytes([0xFB, 0xF4, 0xEB, 0xFD]))                            # sti; 1: hlt; jmp 1b
    body = bytearray(0x250)
    body[:len(code)] = code
    body[handler:handler + 7] = bytes([0xB0, 0x44, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
    entry = base + handler
    struct.pack_into("<HHBBH", body, idt + 8 * vector, entry & 0xFFFF, 0x20, 0, 0x8E, entry >> 16)
    struct.pack_into("<HI", body, idtr, 8 * (vector + 1) - 1, base + idt)
    return bytes(body)


def test_the_uart_interrupts_through_the_pic(tmp_path):
    r = run(tmp_path, uart_interrupt_kernel())
    assert r.returncode == 0x44, r.stderr
