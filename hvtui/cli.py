"""The `hvtui` command: `run`, `images`, `bench` (and, with no arguments, the TUI).

Errors the user can cause print one line on stderr and exit non-zero, with no traceback.
Exit statuses of `hvtui run`: the guest's debug-exit value & 0xff; 3 when the guest
crashed; 124 on --timeout; 1 for a monitor error (bad image, no KVM, ...); 2 for usage.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import termios
import tty

from hvtui import __version__, images
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
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _seconds(positive: bool):
    """A finite number of seconds: positive (a deadline), or at least 0 (0: off)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds {'above' if positive else 'from'} "
                                             f"0: {text!r}")
        return value
    return parse


def _mib(text: str) -> int:
    value = _positive_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1 MiB")
    return value << 20


def _log_options(parser) -> None:
    parser.add_argument("--log-dir", default=None, help="where console logs go")
    parser.add_argument("--log-max", type=_mib, default=None, metavar="MiB",
                        help="cap of each console log; past it the log rotates to NAME.log.1 (64)")
    parser.add_argument("--log-keep", type=_positive_int, default=None, metavar="N",
                        help="rotated console logs kept per console (2)")


def _stdin_options(parser) -> None:
    parser.add_argument("--stdin-eof", choices=("stop", "keep"), default="stop",
                        help="when piped input ends: stop the guest once it has read its input and "
                             "--eof-grace passed (stop, the default), or let it run on (keep)")
    parser.add_argument("--eof-grace", type=_seconds(False), default=2.0, metavar="S",
                        help="seconds a guest has after its piped input ends to finish on its own (2)")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (exit 2), as every other error is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _gdb_address(text: str) -> tuple[str, int]:
    from hvtui.gdb.server import parse_address
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hvtui", description="A Type-2 hypervisor you drive from a terminal.")
    p.add_argument("--version", action="version", version=f"hvtui {__version__}")
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
    run.add_argument("--timeout", type=_seconds(True), default=None, metavar="S",
                     help="stop the guest after S seconds (exit 124)")
    run.add_argument("--name", default="", help="guest name (for the log file)")
    run.add_argument("--watchdog", type=_seconds(False), default=0.0, metavar="S",
                     help="crash a vCPU stuck S seconds with interrupts off and no exits (default 0: never)")
    run.add_argument("--disk", default=None, metavar="FILE",
                     help="a host file as the guest's disk: virtio-blk, and the emulated ATA disk")
    run.add_argument("--disk-readonly", action="store_true", help="the disk refuses writes")
    run.add_argument("--overcommit", action="store_true",
                     help="start the guest even if the host (or its memory cgroup) cannot promise all its RAM")
    _log_options(run)
    _stdin_options(run)
    run.add_argument("-v", "--verbose", action="store_true", help="monitor messages on stderr")
    run.add_argument("--snapshot-after", type=_seconds(False), default=None, metavar="S",
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
    restore.add_argument("--timeout", type=_seconds(True), default=None, metavar="S",
                         help="stop the guest after S seconds (exit 124)")
    restore.add_argument("--disk", default=None, metavar="FILE",
                         help="the disk to give the restored guest; required when the snapshot had one "
                              "(`hvtui snapshot info` names it): give that path to reopen it read-write")
    restore.add_argument("--disk-readonly", action="store_true", help="the disk refuses writes")
    restore.add_argument("--overcommit", action="store_true",
                         help="restore even if the host (or its memory cgroup) cannot promise all its RAM")
    _log_options(restore)
    _stdin_options(restore)
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


def _restore_overrides(args) -> dict:
    """restore: the snapshot's disk is reopened read-write only when the user names it."""
    from hvtui.vmm import snapshot
    saved_disk = snapshot.verify(args.file)["disk"]
    overrides = {"overcommit": args.overcommit}
    if args.disk:
        overrides.update(disk=args.disk, disk_readonly=args.disk_readonly)
    elif saved_disk:
        raise HvError(f"{args.file}: the snapshot's guest had the disk {saved_disk}, which restore would open "
                      f"read-write: pass --disk {saved_disk} to reopen it (or --disk FILE for another)")
    return overrides


async def _run(args) -> int:
    from hvtui import logs
    from hvtui.host import GuestSpec, Host
    from hvtui.stdin_pump import StdinPump
    from hvtui.vmm.machine import State

    out = sys.stdout.buffer
    vga = args.console == "vga"
    log_limits = {"log_max_bytes": args.log_max or logs.DEFAULT_MAX_BYTES,
                  "log_keep": logs.DEFAULT_KEEP if args.log_keep is None else args.log_keep}
    async with Host(log_dir=args.log_dir, spare_vm=False, **log_limits) as host:
        if args.command == "restore":
            overrides = await asyncio.to_thread(_restore_overrides, args)
            guest = await host.restore(args.file, name=args.name or None, start=False, **overrides)
        else:
            spec = GuestSpec(image=args.image, name=args.name, memory_mib=args.memory, vcpus=args.vcpus,
                             cmdline=args.cmdline, watchdog_s=args.watchdog,
                             disk=args.disk, disk_readonly=args.disk_readonly,
                             initrd=split_initrd(args.initrd), exit_code_style=args.exit_code_style,
                             overcommit=args.overcommit)
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

        stdin_fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
        interactive = stdin_fd is not None and os.isatty(stdin_fd)
        view = None
        if vga:
            from hvtui.vgaterm import VgaTerminal
            view = VgaTerminal(host, guest.name, out, os.isatty(out.fileno()),
                               pause_input=lambda: pump and pump.pause(),
                               resume_input=lambda: pump and pump.resume())
        pump = None if stdin_fd is None else StdinPump(host, guest.name, stdin_fd, interactive, DETACH_KEY,
                                                       args.stdin_eof, args.eof_grace,
                                                       deliver=view.feed if view is not None else None)

        if getattr(args, "gdb", None) is not None:
            await _serve_gdb(host, guest, args)

        with _screen_session(view, args, host, guest), _RawStdin() if interactive else contextlib.nullcontext():
            guest.machine.start()
            if pump is not None:
                pump.start()
            ended = asyncio.create_task(host.wait_until_ended(guest.name))
            waiters = {ended}
            if pump is not None:
                waiters |= {asyncio.create_task(pump.detached.wait()), asyncio.create_task(pump.input_done.wait())}
            snap_failed: list[str] = []
            if getattr(args, "snapshot_after", None) is not None:
                waiters.add(asyncio.create_task(_live_snapshot(host, guest, args, snap_failed)))
            done, _ = await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
            if pump is not None:
                pump.close()
            for t in waiters:
                if t is not ended:
                    t.cancel()
            if ended not in done:
                await host.stop(guest.name)
                await host.wait_until_ended(guest.name)
                if pump is not None and pump.detached.is_set():
                    _say(f"{guest.name}: detached (Ctrl-]); guest stopped")
                    return EXIT_INTERRUPT
                if snap_failed:
                    return EXIT_ERROR
                if pump is not None and pump.input_done.is_set():
                    _say(f"{guest.name}: end of input; guest stopped (--stdin-eof keep lets it run on)")
                    return 0
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
    except Exception as e:      # HvError: one line; anything else too, never "timed out"
        failed.append(str(e))
        _say(str(e) if isinstance(e, HvError) else f"{guest.name}: snapshot failed: {type(e).__name__}: {e}")
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
    if info["initrd"]:
        print(f"  initrd    {', '.join(info['initrd'])}")
    if info["disk"]:
        mode = "read-only" if info["disk_readonly"] else "read-write"
        print(f"  disk      {info['disk']} ({mode}; not in the snapshot: restore opens it only when given "
              f"--disk)")
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
    except OSError as e:        # a file the user named, a full disk: one line, not a traceback
        _say(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
