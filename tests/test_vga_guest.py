"""VGA text mode and the PS/2 keyboard with real guests on real KVM: the vgademo kernel's
screen and keys through the Host; a snapshot taken while it draws restores to the same
screen (and a keyboard that still works); the host's key queue refuses overflow whole
and loses nothing; guests that flood the keyboard controller, pulse its reset line, or
write garbage to the VGA registers with the start address past the window never break
the monitor; `hvtui run --console vga` without a terminal prints the final screen and
--screen-to saves it."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

import kernels
from hvtui import ps2keys
from hvtui.errors import StateError
from hvtui.api import Boot, GuestSpec
from hvtui.vgaterm import AnsiScreen
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm

EXIT_7 = bytes([0xB8, 7, 0, 0, 0, 0xE7, 0xF4, 0xF4])              # mov $7,%eax; out %eax,$0xf4; hlt


async def until(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def ready(host, name) -> bool:
    return "- ready" in host.vga_screen(name).row_text(22)


def key_lines(guest) -> list[str]:
    return [line for line in bytes(guest.history).decode().splitlines() if line.startswith("key: ")]


async def test_snapshot_mid_drawing_restores_the_same_screen(host, tmp_path):
    v = await host.create(GuestSpec("vgademo", name="v", memory_mib=16, boot=Boot(cmdline="delay=100")))
    await until(lambda: " bg 3" in host.vga_screen("v").row_text(5), "row 5 drawn")
    await host.pause("v")
    before = host.vga_screen("v")
    assert not ready(host, "v") and before.row_text(20).strip() == ""     # caught mid-drawing
    await host.snapshot("v", tmp_path / "v.snap")
    r = await host.restore(tmp_path / "v.snap", name="r", start=False)
    assert host.vga_screen("r") == before                # cells, cursor, palette, blink mode
    await host.resume("v")
    r.machine.start()
    await until(lambda: ready(host, "v") and ready(host, "r"), "both to finish drawing")
    assert host.vga_screen("r") == host.vga_screen("v")
    host.send_keys("r", ps2keys.for_char("q"))           # the restored keyboard and IRQ 1 work
    await until(lambda: "key: 90 q break" in key_lines(r), "the restored guest's echo")
    assert key_lines(r) == ["key: 10 q make 'q'", "key: 90 q break"] and key_lines(v) == []


async def test_key_queue_refuses_overflow_whole_and_loses_nothing(host):
    v = await host.create(GuestSpec("vgademo", name="v", memory_mib=16))
    await until(lambda: ready(host, "v"), "the demo")
    with pytest.raises(StateError, match="none were sent"):
        host.send_keys("v", ps2keys.for_char("a") * 2100)            # 4200 keys > 4096
    assert not v.keyboard.pending and key_lines(v) == []
    text = "the quick brown fox jumps over the lazy dog " * 4
    host.send_keys("v", [k for ch in text for k in ps2keys.for_char(ch)])   # far more than 64 bytes
    await until(lambda: len(key_lines(v)) == 2 * len(text), "every key's echo")
    typed = "".join(line.split("'")[1] for line in key_lines(v) if "make '" in line)
    assert typed == text
    assert host.vga_screen("v").row_text(23).startswith("type> " + text[:73])


async def test_a_guest_flooding_the_keyboard_controller(host, tmp_path):
    """20,000 rounds of a command byte to 0x64 and the same byte to 0x60 (everything but the
    reset pulses), reading 0x60 one round in 8, while the host types at it."""
    flood = bytes([0xB9, 0x20, 0x4E, 0, 0,                        # mov $20000,%ecx
                   0x89, 0xC8, 0x3C, 0xF0, 0x72, 0x02, 0x2C, 0x10,  # 1: mov %ecx,%eax; al >= 0xf0: -= 0x10
                   0xE6, 0x64, 0xE6, 0x60,                        # out %al,$0x64; out %al,$0x60
                   0xF6, 0xC1, 0x07, 0x75, 0x02, 0xE4, 0x60,      # every 8th: in $0x60,%al
                   0xE2, 0xEB]) + EXIT_7                          # loop 1b
    path = tmp_path / "flood.elf"
    path.write_bytes(kernels.pvh(body=flood))
    g = await host.create(GuestSpec(str(path), name="flood", memory_mib=16))
    while g.state.live:
        try:
            host.send_keys("flood", ps2keys.for_char("z"))
        except StateError:
            pass                                                  # full, or already ended
        await asyncio.sleep(0.005)
    await host.wait_until_ended("flood", 60)
    assert g.state == State.STOPPED and g.exit_code == 7, g.machine.stop_reason
    assert not g.keyboard.pending
    other = await host.create(GuestSpec("hello", name="hi", memory_mib=16))
    await host.wait_until_ended("hi", 30)
    assert other.exit_code == 0


@pytest.mark.parametrize("how, body", [
    ("pulse 0xfe", bytes([0xB0, 0xFE, 0xE6, 0x64, 0xF4])),                               # out 0xfe,$0x64
    ("output port", bytes([0xB0, 0xD1, 0xE6, 0x64, 0xB0, 0x02, 0xE6, 0x60, 0xF4]))])      # 0xd1, then bit 0 low
def test_the_reset_line_ends_the_guest(tmp_path, how, body):
    path = tmp_path / "k.elf"
    path.write_bytes(kernels.pvh(body=body))
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", str(path), "--log-dir", str(tmp_path), "--timeout",
                        "30", "-v"], capture_output=True, timeout=60)
    assert r.returncode == 0 and b"reset (i8042)" in r.stderr, (how, r.stderr)


async def test_garbage_to_the_vga_registers_and_a_start_address_past_the_window(host, tmp_path):
    garbage = bytes([
        0xC7, 0x05, 0x14, 0x80, 0x0B, 0x00, ord("H"), 0x07, ord("I"), 0x07,   # "HI" at window cell 10
        0xB9, 0x00, 0x20, 0x00, 0x00,                         # mov $0x2000,%ecx
        0x89, 0xCA, 0x83, 0xE2, 0x1F,                         # 1: mov %ecx,%edx; and $0x1f,%edx
        0x81, 0xC2, 0xC0, 0x03, 0x00, 0x00,                   # add $0x3c0,%edx
        0x69, 0xC1, 0x9D, 0x00, 0x00, 0x00, 0x30, 0xE8,       # imul $0x9d,%ecx,%eax; xor %ch,%al
        0xEE, 0xEC, 0xE2, 0xE9,                               # out %al,(%dx); in (%dx),%al; loop 1b
        0x66, 0xBA, 0xC2, 0x03, 0xB0, 0x67, 0xEE,             # misc output: colour again
        0x66, 0xBA, 0xCE, 0x03, 0x66, 0xB8, 0x06, 0x0E, 0x66, 0xEF,   # GR06: the window at 0xb8000
        0x66, 0xBA, 0xD4, 0x03,
        0x66, 0xB8, 0x11, 0x00, 0x66, 0xEF,                   # CR11: unprotect
        0x66, 0xB8, 0x0C, 0x3F, 0x66, 0xEF,                   # start address 0x3ff6: 10 cells
        0x66, 0xB8, 0x0D, 0xF6, 0x66, 0xEF,                   #   before the end of the window
    ]) + EXIT_7
    path = tmp_path / "garbage.elf"
    path.write_bytes(kernels.pvh(body=garbage))
    g = await host.create(GuestSpec(str(path), name="g", memory_mib=16))
    ansi = AnsiScreen(lambda text: None)
    while g.state.live:                                       # the monitor reads along
        ansi.draw(host.vga_screen("g"))
        await asyncio.sleep(0.001)
    await host.wait_until_ended("g", 60)
    assert g.exit_code == 7, g.machine.stop_reason
    screen = host.vga_screen("g")
    assert screen.row_text(0)[20:22] == "HI" and len(screen.lines()) == 25
    ansi.draw(screen)


def test_run_console_vga_without_a_terminal(tmp_path):
    """Keys from a pipe reach the guest once it is ready; the final screen is printed as
    text; --screen-to saves it as text and SVG."""
    p = subprocess.Popen([sys.executable, "-m", "hvtui", "run", "vgademo", "--console", "vga", "--log-dir",
                          str(tmp_path), "--timeout", "60", "--screen-to", str(tmp_path / "shot")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = tmp_path / "vgademo-1.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "key: " in log.read_text()):   # x until the guest echoes one
        assert time.monotonic() < deadline and p.poll() is None, "the guest never took a key"
        p.stdin.write(b"x")
        p.stdin.flush()
        time.sleep(0.2)
    p.stdin.write(b"hello\x1b[21~")                              # then F10
    p.stdin.flush()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 25 and lines[0].startswith(" hvtui VGA demo") and lines[23].endswith("hello")
    assert "\x1b" not in out.decode()                           # text, not terminal codes
    assert (tmp_path / "shot.txt").read_text().splitlines() == lines
    assert 'fill="#0000aa"' in (tmp_path / "shot.svg").read_text()


def test_run_screen_to_a_missing_folder_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", "vgademo", "--screen-to",
                        str(tmp_path / "nope" / "shot")], capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"no folder" in r.stderr
