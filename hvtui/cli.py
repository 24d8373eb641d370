"""The `hvtui` command: `run`, `images`, `bench` (and, with no arguments, the TUI).

Errors the user can cause print one line on stderr and exit non-zero, with no traceback.
Exit statuses of `hvtui run`: the guest's debug-exit value & 0xff; 3 when the guest
crashed; 124 on --timeout; 1 for a monitor error (bad image, no KVM, ...); 2 for usage.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import termios
import tty

from hvtui import images
from hvtui.errors import ConfigError, HvError

EXIT_ERROR, EXIT_CRASH, EXIT_TIMEOUT, EXIT_INTERRUPT = 1, 3, 124, 130
DETACH_KEY = b"\x1d"   # Ctrl-]


_held: list[str] | None = None     # messages kept while --console vga has the alternate screen


def _say(msg: str) -> None:
    if _held is not None:
        _held.append(msg)
        return
    print(f"hvtui: {msg}", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _gdb_address(text: str) -> tuple[str, int]:
    from hvtui.gdb.server import parse_address
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvtui", description="A Type-2 hypervisor you drive from a terminal.")
    p.add_argument("--fleet", metavar="FILE.toml", default=None,
                   help="with no subcommand: the TUI starts the guests of this file ([[guest]] tables)")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run one guest with its console on this terminal")
    run.add_argument("image", metavar="KERNEL",
                     help="a built-in image name (see `hvtui images`) or a kernel: Linux bzImage, an ELF with "
                          "a PVH note (vmlinux), a Multiboot 1 or 2 kernel, or an hvtui ELF64")
    run.add_argument("--memory", type=_positive_int, default=64, metavar="MiB", help="guest RAM in MiB (64)")
    run.add_argument("--vcpus", type=_positive_int, default=1, metavar="N", help="vCPUs (1)")
    run.add_argument("--append", "--cmdline", dest="cmdline", default=None, metavar="STR",
                     help="the kernel's command line")
    run.add_argument("--initrd", default=None, metavar="FILE[,FILE...]",
                     help="Linux: the initramfs (several are concatenated); Multiboot: the modules, module 0 "
                          "first, each 'FILE ARGS' to give it a string")
    run.add_argument("--exit-code", dest="exit_code_style", choices=("hvtui", "qemu"), default="hvtui",
                     help="qemu: a write of v to the debug-exit port 0xf4 ends hvtui with (v << 1) | 1, as "
                          "QEMU's isa-debug-exit does")
    run.add_argument("--timeout", type=float, default=None, metavar="S", help="stop the guest after S seconds (exit 124)")
    run.add_argument("--name", default="", help="guest name (for the log file)")
    run.add_argument("--watchdog", type=float, default=0.0, metavar="S",
                     help="crash a vCPU stuck S seconds with interrupts off and no exits (default 0: never)")
    run.add_argument("--disk", default=None, metavar="FILE",
                     help="a host file as the guest's disk: virtio-blk, and the emulated ATA disk")
    run.add_argument("--disk-readonly", action="store_true", help="the disk refuses writes")
    run.add_argument("--log-dir", default=None, help="where console logs go")
    run.add_argument("-v", "--verbose", action="store_true", help="monitor messages on stderr")
    run.add_argument("--snapshot-after", type=float, default=None, metavar="S",
                     help="take a live snapshot S seconds in (the guest goes on); needs --snapshot-to")
    run.add_argument("--snapshot-to", default=None, metavar="FILE", help="where --snapshot-after saves")
    run.add_argument("--gdb", type=_gdb_address, default=None, metavar="[HOST:]PORT",
                     help="serve the GDB remote protocol for this guest (127.0.0.1 unless HOST is given; "
                          "port 0 picks a free one)")
    run.add_argument("--gdb-wait", action="store_true",
                     help="with --gdb: hold the guest before its first instruction until gdb continues it")
    _screen_arguments(run)

    restore = sub.add_parser("restore", help="continue a snapshot as a new guest, console on this terminal")
    restore.add_argument("file", help="a snapshot file (hvtui run --snapshot-to, or the TUI)")
    restore.add_argument("--name", default="", help="guest name (default: the snapshot's)")
    restore.add_argument("--timeout", type=float, default=None, metavar="S", help="stop the guest after S seconds (exit 124)")
    restore.add_argument("--log-dir", default=None, help="where console logs go")
    restore.add_argument("-v", "--verbose", action="store_true", help="monitor messages on stderr")
    _screen_arguments(restore)

    snap = sub.add_parser("snapshot", help="inspect snapshot files")
    snap_sub = snap.add_subparsers(dest="snapshot_command", required=True)
    info = snap_sub.add_parser("info", help="verify a snapshot and show what it holds")
    info.add_argument("file")
    info.add_argument("--json", action="store_true")

    sub.add_parser("images", help="list the built-in guest images")

    bench = sub.add_parser("bench", help="benchmarks, each against a reference measured in the same run")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    ex = bench_sub.add_parser("exits", help="port-I/O exits/s: C hot path vs a raw KVM_RUN loop vs Python")
    ex.add_argument("--json", action="store_true")
    ex.add_argument("--runs", type=_positive_int, default=5)
    ex.add_argument("--count", type=_positive_int, default=100000, help="exits per run (about a second each)")
    pv = bench_sub.add_parser("pv", help="disk throughput and exits/MiB: virtio-blk vs emulated ATA PIO")
    pv.add_argument("--json", action="store_true")
    pv.add_argument("--runs", type=_positive_int, default=5)
    pv.add_argument("--pv-mib", type=_positive_int, default=16, help="MiB through virtio-blk per direction")
    pv.add_argument("--emu-kib", type=_positive_int, default=256, help="KiB through the ATA disk per direction")
    sb = bench_sub.add_parser("snapshot", help="snapshot save/restore time and file size at 64 MiB..4 GiB")
    sb.add_argument("--json", action="store_true")
    sb.add_argument("--runs", type=_positive_int, default=5)
    sb.add_argument("--sizes", default="64,256,1024,4096", metavar="MiB,...", help="guest sizes in MiB")
    sb.add_argument("--touched", default="16,64", metavar="MiB,...",
                    help="also save/restore the middle size with this much memory written (\"\" for none)")
    su = bench_sub.add_parser("startup", help="time to a tiny PVH guest's first line and exit: hvtui run vs QEMU microvm")
    su.add_argument("--json", action="store_true")
    su.add_argument("--runs", type=_positive_int, default=7)
    ib = bench_sub.add_parser("idle", help="monitor CPU with N idle guests (vs N idle QEMU), console echo latency")
    ib.add_argument("--json", action="store_true")
    ib.add_argument("--guests", type=_positive_int, default=64)
    ib.add_argument("--seconds", type=float, default=10.0)
    tb = bench_sub.add_parser("tui", help="the TUI headless with busy guests: main-thread CPU, key-to-screen latency")
    tb.add_argument("--json", action="store_true")
    tb.add_argument("--guests", type=_positive_int, default=16)
    tb.add_argument("--seconds", type=float, default=30.0)
    return p


def _screen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--console", choices=("serial", "vga"), default="serial",
                   help="vga: draw the guest's VGA text screen here (the terminal's alternate screen) and send "
                        "keys to its PS/2 keyboard, instead of COM1; without a terminal, print the final screen")
    p.add_argument("--screen-to", default=None, metavar="FILE",
                   help="when the run ends, save the guest's VGA screen as FILE.txt and FILE.svg (in its colours)")


def split_initrd(text: str | None) -> list[str]:
    """QEMU's -initrd list: files separated by commas, each optionally followed by its arguments."""
    return [item.strip() for item in text.split(",") if item.strip()] if text else []


# ---- hvtui run ----
class _RawStdin:
    """Puts an interactive stdin in raw mode for the guest, and back."""

    def __init__(self):
        self.fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
        self.saved = None

    def __enter__(self):
        if self.fd is not None and os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


async def _run(args) -> int:
    from hvtui.host import GuestSpec, Host
    from hvtui.vmm.machine import State

    out = sys.stdout.buffer
    vga = args.console == "vga"
    async with Host(log_dir=args.log_dir, spare_vm=False) as host:
        if args.command == "restore":
            guest = await host.restore(args.file, name=args.name or None, start=False)
        else:
            spec = GuestSpec(image=args.image, name=args.name, memory_mib=args.memory, vcpus=args.vcpus,
                             cmdline=args.cmdline, watchdog_s=args.watchdog,
                             disk=args.disk, disk_readonly=args.disk_readonly,
                             initrd=split_initrd(args.initrd), exit_code_style=args.exit_code_style)
            guest = await host.create(spec, start=False)
        cfg = guest.machine.config

        def to_stdout(data: bytes) -> None:
            out.write(data)
            out.flush()
        if not vga:
            host.console_subscribe(guest.name, to_stdout)
        if args.verbose:
            _say(f"{guest.name}: {guest.machine.boot_protocol}, {cfg.memory_mib} MiB, {cfg.vcpus} vCPU(s), "
                 f"log {guest.log_path}")

        loop = asyncio.get_running_loop()
        detached = asyncio.Event()
        stdin_fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
        interactive = stdin_fd is not None and os.isatty(stdin_fd)
        view = None
        if vga:
            from hvtui.vgaterm import VgaTerminal
            view = VgaTerminal(host, guest.name, out, os.isatty(out.fileno()),
                               pause_input=lambda: loop.remove_reader(stdin_fd),
                               resume_input=lambda: loop.add_reader(stdin_fd, on_stdin))

        def on_stdin() -> None:
            try:
                data = os.read(stdin_fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(stdin_fd)
                return
            if interactive and DETACH_KEY in data:
                detached.set()
                data = data.split(DETACH_KEY)[0]
            if data and guest.state.live:
                if view is not None:
                    view.feed(data)
                else:
                    host.send_input(guest.name, data)

        if getattr(args, "gdb", None) is not None:
            await _serve_gdb(host, guest, args)

        with _screen_session(view, args, host, guest), _RawStdin() if interactive else contextlib.nullcontext():
            if stdin_fd is not None:
                with contextlib.suppress(OSError, ValueError, PermissionError):
                    loop.add_reader(stdin_fd, on_stdin)
            guest.machine.start()
            ended = asyncio.create_task(host.wait_until_ended(guest.name))
            waiters = {ended, asyncio.create_task(detached.wait())}
            snap_failed: list[str] = []
            if getattr(args, "snapshot_after", None) is not None:
                waiters.add(asyncio.create_task(_live_snapshot(host, guest, args, snap_failed)))
            done, _ = await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
            if stdin_fd is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(stdin_fd)
            for t in waiters:
                if t is not ended:
                    t.cancel()
            if ended not in done:
                await host.stop(guest.name)
                await host.wait_until_ended(guest.name)
                if detached.is_set():
                    _say(f"{guest.name}: detached (Ctrl-]); guest stopped")
                    return EXIT_INTERRUPT
                if snap_failed:
                    return EXIT_ERROR
                _say(f"{guest.name}: timed out after {args.timeout:g}s; guest stopped")
                return EXIT_TIMEOUT
        if snap_failed:
            return EXIT_ERROR

        m = guest.machine
        server = host.gdb.get(guest.name)
        if m.state == State.CRASHED and server is not None and server.client:
            _say(f"{guest.name} crashed; gdb can look at it until it detaches")
            await server.client_gone()
        if m.state == State.CRASHED:
            _say(f"{guest.name} crashed: {m.crash.summary()} (register dump in {guest.log_path})")
            if args.verbose:
                print(m.crash.format(), file=sys.stderr)
            return EXIT_CRASH
        if m.exit_code is None:
            if args.verbose:
                _say(f"{guest.name}: {m.stop_reason}")
            return 0
        status = m.exit_status
        if args.verbose:
            _say(f"{guest.name}: the guest wrote {m.exit_code:#x} to the debug-exit port: exit status {status}")
        return status


async def _serve_gdb(host, guest, args) -> None:
    """--gdb: the guest's gdb server; what it refuses a debugger is said here too (gdb 13
    shows no reason for a refused breakpoint or watchpoint)."""
    server = await host.serve_gdb(guest.name, args.gdb, wait=args.gdb_wait)
    _say(f"{guest.name}: gdb server: {server.target_remote}" + (" (waiting for it)" if args.gdb_wait else ""))

    def on_event(event) -> None:
        if event.kind != "debug" or event.guest != guest.name:
            return
        if "refused" in event.info:
            _say(f"{guest.name}: gdb: refused {event.info['refused']}")
        elif args.verbose and ("attached" in event.info or "detached" in event.info):
            what = "attached" if "attached" in event.info else "detached"
            _say(f"{guest.name}: gdb {what} ({event.info[what]})")
        elif args.verbose and "stopped" in event.info:
            _say(f"{guest.name}: stopped by gdb: {event.info['stopped']}")
    host.subscribe(on_event)


@contextlib.contextmanager
def _screen_session(view, args, host, guest):
    """--console vga's screen while the run lasts (messages wait until the terminal's own
    screen is back); --screen-to's files when it ends."""
    global _held
    if view is not None:
        view.start()
        _held = [] if view.tty else None
    try:
        yield
    finally:
        if view is not None:
            view.close()
            held, _held = _held or [], None
            for msg in held:
                _say(msg)
        if args.screen_to:
            from hvtui import textscreen
            try:
                txt, svg = textscreen.save(host.vga_screen(guest.name), args.screen_to, f"{guest.name}: VGA screen")
                if args.verbose:
                    _say(f"{guest.name}: VGA screen saved to {svg} and {txt}")
            except OSError as e:
                _say(f"--screen-to {args.screen_to}: {e.strerror or e}")


async def _live_snapshot(host, guest, args, failed: list) -> None:
    """--snapshot-after: save once, S seconds in, and let the guest go on. On failure say
    why and stop the guest (the run then exits 1)."""
    await asyncio.sleep(args.snapshot_after)
    if not guest.state.live:
        return
    try:
        info = await host.snapshot(guest.name, args.snapshot_to)
    except HvError as e:
        failed.append(str(e))
        _say(str(e))
        await host.stop(guest.name)
        return
    if args.verbose:
        _say(f"{guest.name}: snapshot {info['path']} ({info['data_bytes'] >> 10} KiB of memory, "
             f"{info['save_ms']:.1f} ms)")
    await asyncio.Event().wait()     # stay pending: only the guest's end or the timeout ends the run


def _snapshot_info(args) -> int:
    import json
    import time
    from hvtui.vmm import snapshot
    from hvtui.vmm.kvm import Kvm
    info = snapshot.verify(args.file, Kvm.get())
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: hvtui snapshot, format {info['format']}, verified")
    print(f"  taken     {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['created']))} on KVM ({info['kvm']}), "
          f"CPUID {info['cpuid_fingerprint'][:12]} (this host)")
    print(f"  guest     {info['name']}: {info['image']}, {info['memory_mib']} MiB, {info['vcpus']} vCPU(s), "
          f"cmdline {info['cmdline']!r}")
    print(f"  vCPUs     " + ", ".join(f"{i}: rip={rip:#x}" for i, rip in enumerate(info['rip'])))
    print(f"  devices   {', '.join(info['devices'])}")
    print(f"  memory    {info['data_bytes'] >> 10} KiB of data in {info['memory_mib']} MiB, "
          f"file {info['file_size']} bytes ({info['allocated_bytes'] >> 10} KiB on disk)")
    return 0


def _images() -> int:
    width = max(len(n) for n in images.BUILTINS)
    for name, img in images.BUILTINS.items():
        print(f"{name:<{width}}  {img.description}")
    return 0


def _bench(args) -> int:
    if args.bench == "exits":
        from hvtui.bench.exits import main as bench_exits
        return bench_exits(args)
    if args.bench == "snapshot":
        from hvtui.bench.snapshot import main as bench_snapshot
        return bench_snapshot(args)
    if args.bench == "pv":
        from hvtui.bench.pv import main as bench_pv
        return bench_pv(args)
    if args.bench == "startup":
        from hvtui.bench.startup import main as bench_startup
        return bench_startup(args)
    if args.bench == "idle":
        from hvtui.bench.idle import main as bench_idle
        return bench_idle(args)
    if args.bench == "tui":
        from hvtui.tui.bench import main as bench_tui
        return bench_tui(args)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run" and (args.snapshot_after is None) != (args.snapshot_to is None):
            parser.error("--snapshot-after and --snapshot-to go together")
        if args.command == "run" and args.gdb_wait and args.gdb is None:
            parser.error("--gdb-wait needs --gdb [HOST:]PORT")
        if getattr(args, "screen_to", None):
            folder = os.path.dirname(os.path.abspath(args.screen_to))
            if not os.path.isdir(folder):
                raise ConfigError(f"--screen-to {args.screen_to}: no folder {folder}")
        if args.command in ("run", "restore"):
            return asyncio.run(_run(args))
        if args.command == "snapshot":
            return _snapshot_info(args)
        if args.command == "images":
            return _images()
        if args.command == "bench":
            return _bench(args)
        from hvtui.tui import run_tui   # no subcommand: the TUI
        return run_tui(args)
    except HvError as e:
        _say(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
