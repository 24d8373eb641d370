"""The `hvtui` command: with no subcommand the TUI (attached to the user's monitor);
`serve` and `kill-server`; the virsh-style commands on the monitor's guests (commands.py);
`run`, the one-shot foreground guest with no daemon; `images`, `snapshot info`, `bench`.

Everything goes through hvtui.api. Errors the user can cause print one line on stderr and
exit non-zero, with no traceback. Exit statuses of `hvtui run`: the guest's debug-exit
value & 0xff; 3 when the guest crashed; 124 on --timeout; 1 for a monitor error (bad
image, no KVM, ...); 2 for usage.
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

from hvtui import __version__, api, images
from hvtui.api import SERIAL, Boot, GuestSpec
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


def _log_limits(parser) -> None:
    parser.add_argument("--log-max", type=_mib, default=None, metavar="MiB",
                        help="cap of each console log; past it the log rotates to NAME.RUN.log.1 (64)")
    parser.add_argument("--log-keep", type=_positive_int, default=None, metavar="N",
                        help="rotated console logs kept per console (2)")


def _log_options(parser) -> None:
    parser.add_argument("--log-dir", default=None, help="where console logs go")
    _log_limits(parser)


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


def _gdb_address(text: str) -> str:
    try:
        host, port = api.parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_parser(only_run: bool = False) -> argparse.ArgumentParser:
    """The whole command line; only_run: the top level and `run` alone (main() asks for
    it when the first word is `run`: the other 25 subcommands cost ~5 ms to build, an
    eighth of QEMU's whole run of a tiny kernel)."""
    p = _Parser(prog="hvtui", description="A Type-2 hypervisor you drive from a terminal.")
    p.add_argument("--version", action="version", version=f"hvtui {__version__}")
    p.add_argument("--fleet", metavar="FILE.toml", default=None,
                   help="with no subcommand: the TUI starts the guests of this file ([[guest]] tables)")
    p.add_argument("--embedded", action="store_true",
                   help="with no subcommand: the TUI runs its own monitor (its guests end when it quits)")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run one guest here, its console on this terminal (no daemon)")
    run.add_argument("image", metavar="KERNEL",
                     help="a built-in image name (see `hvtui images`), a kernel (Linux bzImage, an ELF with "
                          "a PVH note (vmlinux), a Multiboot 1 or 2 kernel, an hvtui ELF64), or a snapshot "
                          "file to continue")
    add_guest_options(run)
    run.add_argument("--timeout", type=_seconds(True), default=None, metavar="S",
                     help="stop the guest after S seconds (exit 124)")
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
    if only_run:
        return p

    serve = sub.add_parser("serve", help="run the monitor (the per-user daemon the TUI and commands talk to)")
    serve.add_argument("--detach", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--vcpu-nice", type=_positive_int, default=19, metavar="N",
                       help="niceness of guests' vCPU threads (19; 0: leave them)")
    serve.add_argument("--console-nice", type=_positive_int, default=10, metavar="N",
                       help="niceness of a guest while a console is attached to it (10)")
    _log_limits(serve)
    sub.add_parser("kill-server", help="stop the monitor and every guest in it")

    from hvtui import commands
    commands.add_parsers(sub, add_guest_options)

    sub.add_parser("images", help="list the built-in guest images")

    bench = sub.add_parser("bench", help="benchmarks, each against a reference measured in the same run")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    ab = bench_sub.add_parser("api", help="request round trip and event latency over the socket vs in-process")
    ab.add_argument("--json", action="store_true")
    ab.add_argument("--clients", type=_positive_int, default=4)
    ab.add_argument("--guests", type=_positive_int, default=16)
    ab.add_argument("--seconds", type=float, default=5.0, help="of requests per client, per phase")
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


def add_guest_options(p: argparse.ArgumentParser) -> None:
    """The options of a guest, shared by `run` and `start`."""
    p.add_argument("--memory", type=_positive_int, default=64, metavar="MiB", help="guest RAM in MiB (64)")
    p.add_argument("--vcpus", type=_positive_int, default=1, metavar="N", help="vCPUs (1)")
    p.add_argument("--append", "--cmdline", dest="cmdline", default=None, metavar="STR",
                   help="the kernel's command line")
    p.add_argument("--initrd", default=None, metavar="FILE[,FILE...]",
                   help="Linux: the initramfs (several are concatenated); Multiboot: the modules, module 0 "
                        "first, each 'FILE ARGS' to give it a string")
    p.add_argument("--exit-code", dest="exit_code_style", choices=("hvtui", "qemu"), default="hvtui",
                   help="qemu: a write of v to the debug-exit port 0xf4 means status (v << 1) | 1, as "
                        "QEMU's isa-debug-exit does")
    p.add_argument("--name", default="", help="guest name (default: IMAGE-N; a snapshot's own name)")
    p.add_argument("--watchdog", type=_seconds(False), default=0.0, metavar="S",
                   help="crash a vCPU stuck S seconds with interrupts off and no exits (default 0: never)")
    p.add_argument("--disk", default=None, metavar="FILE",
                   help="a host file as the guest's disk: virtio-blk, and the emulated ATA disk (a snapshot's "
                        "disk is reopened only when given here)")
    p.add_argument("--disk-readonly", action="store_true", help="the disk refuses writes")
    p.add_argument("--overcommit", action="store_true",
                   help="start the guest even if the host (or its memory cgroup) cannot promise all its RAM")


def spec_from_args(args) -> GuestSpec:
    return api.absolute_spec(GuestSpec(
        image=args.image, name=args.name, memory_mib=args.memory, vcpus=args.vcpus, watchdog_s=args.watchdog,
        disk=args.disk, disk_readonly=args.disk_readonly, overcommit=args.overcommit,
        boot=Boot(cmdline=args.cmdline, initrd=tuple(api.split_initrd(args.initrd)), exit_code=args.exit_code_style)))


def _screen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--console", choices=("serial", "vga"), default="serial",
                   help="vga: draw the guest's VGA text screen here (the terminal's alternate screen) and send "
                        "keys to its PS/2 keyboard, instead of COM1; without a terminal, print the final screen")
    p.add_argument("--screen-to", default=None, metavar="FILE",
                   help="when the run ends, save the guest's VGA screen as FILE.txt and FILE.svg (in its colours)")


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

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        self.__exit__(*exc)


def _restore_overrides(args) -> dict:
    """run SNAPSHOT: the snapshot's disk is reopened read-write only when the user names it."""
    saved_disk = api.snapshot_info(args.image)["disk"]
    overrides = {"overcommit": args.overcommit}
    if args.disk:
        overrides.update(disk=os.path.abspath(args.disk), disk_readonly=args.disk_readonly)
    elif saved_disk:
        raise HvError(f"{args.image}: the snapshot's guest had the disk {saved_disk}, which restore would open "
                      f"read-write: pass --disk {saved_disk} to reopen it (or --disk FILE for another)")
    return overrides


async def _run(args) -> int:
    """`hvtui run`: one guest in a monitor of this process, its serial console here."""
    out = sys.stdout.buffer
    from hvtui.stdin_pump import StdinPump
    vga = args.console == "vga"
    monitor = api.embedded(log_dir=args.log_dir, spare_vm=False, log_max_bytes=args.log_max, log_keep=args.log_keep)
    await monitor.open()
    try:
        if api.is_snapshot(args.image):
            overrides = await asyncio.to_thread(_restore_overrides, args)
            guest = await monitor.restore(args.image, name=args.name or None, start=False, **overrides)
        else:
            guest = await monitor.create(spec_from_args(args), start=False)
        name = guest.name
        ended = asyncio.Event()

        def on_event(event: api.Event) -> None:
            if isinstance(event, api.GuestChanged) and event.guest.name == name and not event.guest.state.live:
                ended.set()
        monitor.subscribe(on_event)

        def to_stdout(data: bytes) -> None:
            out.write(data)
            out.flush()
        if not vga:
            monitor.watch_console(name, SERIAL, to_stdout)
        if args.verbose:
            _say(f"{name}: {guest.boot_protocol}, {guest.spec.memory_mib} MiB, {guest.spec.vcpus} vCPU(s), "
                 f"log {guest.log}")

        stdin_fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
        interactive = stdin_fd is not None and os.isatty(stdin_fd)
        view = None
        if vga:
            from hvtui.vgaterm import VgaTerminal
            view = VgaTerminal(monitor, name, out, os.isatty(out.fileno()))
        pump = None if stdin_fd is None else StdinPump(
            monitor, name, stdin_fd, interactive, DETACH_KEY if interactive else None, args.stdin_eof,
            args.eof_grace, deliver=view.send if view is not None else None)

        gdb_left = asyncio.Event()
        if args.gdb is not None:
            await _serve_gdb(monitor, name, args, gdb_left)

        async with _screen_session(view, args, monitor, name), _RawStdin() if interactive else contextlib.nullcontext():
            await monitor.start(name)
            if pump is not None:
                pump.start()
            ended_task = asyncio.create_task(ended.wait())
            waiters = {ended_task}
            if pump is not None:
                waiters |= {asyncio.create_task(pump.detached.wait()), asyncio.create_task(pump.input_done.wait())}
            snap_failed: list[str] = []
            if args.snapshot_after is not None:
                waiters.add(asyncio.create_task(_live_snapshot(monitor, name, args, snap_failed)))
            done, _ = await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
            if pump is not None:
                pump.close()
            for t in waiters:
                if t is not ended_task:
                    t.cancel()
            if ended_task not in done and monitor.view(name).state.live:
                with contextlib.suppress(HvError):
                    await monitor.stop(name)
                await ended.wait()
                if pump is not None and pump.detached.is_set():
                    _say(f"{name}: detached (Ctrl-]); guest stopped")
                    return EXIT_INTERRUPT
                if snap_failed:
                    return EXIT_ERROR
                if pump is not None and pump.input_done.is_set():
                    _say(f"{name}: end of input; guest stopped (--stdin-eof keep lets it run on)")
                    return 0
                _say(f"{name}: timed out after {args.timeout:g}s; guest stopped")
                return EXIT_TIMEOUT
        if snap_failed:
            return EXIT_ERROR

        guest = monitor.view(name)
        end = guest.end
        if end.kind == "crashed" and guest.gdb_client:
            _say(f"{name} crashed; gdb can look at it until it detaches")
            while monitor.view(name).gdb_client:
                await gdb_left.wait()
                gdb_left.clear()
        if end.kind == "crashed":
            _say(f"{name} crashed: {guest.crash.summary} (register dump in {guest.log})")
            if args.verbose:
                print(guest.crash.report, file=sys.stderr)
            return EXIT_CRASH
        if end.kind != "exited":
            if args.verbose:
                _say(f"{name}: {end.reason}")
            return 0
        if args.verbose:
            _say(f"{name}: the guest wrote {end.exit_code:#x} to the debug-exit port: exit status {end.exit_status}")
        return end.exit_status
    finally:
        await monitor.close()


async def _serve_gdb(monitor: api.Monitor, name: str, args, left: asyncio.Event) -> None:
    """--gdb: the guest's gdb server; what it refuses a debugger is said here too (gdb 13
    shows no reason for a refused breakpoint or watchpoint). left: set when gdb detaches."""
    line = await monitor.gdb(name, args.gdb, wait=args.gdb_wait)
    _say(f"{name}: gdb server: {line}" + (" (waiting for it)" if args.gdb_wait else ""))

    def on_event(event: api.Event) -> None:
        if not isinstance(event, api.DebuggerEvent) or event.guest.name != name:
            return
        if event.what == "detached":
            left.set()
        if event.what == "refused":
            _say(f"{name}: gdb: refused {event.detail}")
        elif args.verbose and event.what in ("attached", "detached"):
            _say(f"{name}: gdb {event.what} ({event.detail})")
        elif args.verbose and event.what == "stopped":
            _say(f"{name}: stopped by gdb: {event.detail}")
    monitor.subscribe(on_event)


@contextlib.asynccontextmanager
async def _screen_session(view, args, monitor: api.Monitor, name: str):
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
            await view.close()
            held, _held = _held or [], None
            for msg in held:
                _say(msg)
        if args.screen_to:
            from hvtui import textscreen
            try:
                screen = await monitor.screen(name)
                txt, svg = textscreen.save(screen, args.screen_to, f"{name}: VGA screen")
                if args.verbose:
                    _say(f"{name}: VGA screen saved to {svg} and {txt}")
            except OSError as e:
                _say(f"--screen-to {args.screen_to}: {e.strerror or e}")
            except HvError as e:
                _say(f"--screen-to {args.screen_to}: {e}")


async def _live_snapshot(monitor, name: str, args, failed: list) -> None:
    """--snapshot-after: save once, S seconds in, and let the guest go on. On failure say
    why and stop the guest (the run then exits 1)."""
    await asyncio.sleep(args.snapshot_after)
    if not monitor.view(name).state.live:
        return
    try:
        info = await monitor.snapshot(name, os.path.abspath(args.snapshot_to))
    except Exception as e:      # HvError: one line; anything else too, never "timed out"
        failed.append(str(e))
        _say(str(e) if isinstance(e, HvError) else f"{name}: snapshot failed: {type(e).__name__}: {e}")
        with contextlib.suppress(HvError):
            await monitor.stop(name)
        return
    if args.verbose:
        _say(f"{name}: snapshot {info['path']} ({info['data_bytes'] >> 10} KiB of memory, "
             f"{info['save_ms']:.1f} ms)")
    await asyncio.Event().wait()     # stay pending: only the guest's end or the timeout ends the run


def _snapshot_info(args) -> int:
    import json
    import time
    info = api.snapshot_info(args.file, pages=True)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: hvtui snapshot, format {info['format']}, verified")
    print(f"  taken     {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['created']))} on KVM ({info['kvm']}), "
          f"CPUID {info['cpuid_fingerprint'][:12]} (this host)")
    print(f"  guest     {info['name']}: {info['image']}, {info['memory_mib']} MiB, {info['vcpus']} vCPU(s), "
          f"cmdline {info['cmdline']!r}")
    print("  vCPUs     " + ", ".join(f"{i}: rip={rip:#x}" for i, rip in enumerate(info['rip'])))
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
    if args.bench == "api":
        from hvtui.bench.api import main as bench_api
        return bench_api(args)
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
    global _ran_to_the_end
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(only_run=words[:1] == ["run"])
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
        if args.command == "run":
            api.prepare_vm()
            status = asyncio.run(_run(args))
            _ran_to_the_end = True
            return status
        if args.command == "serve":
            return api.serve(detach=args.detach, quiet=args.quiet, vcpu_nice=args.vcpu_nice,
                             console_nice=args.console_nice, log_max_bytes=args.log_max, log_keep=args.log_keep)
        if args.command == "snapshot" and args.words[:1] == ["info"]:
            if len(args.words) != 2:
                parser.error("usage: hvtui snapshot info FILE [--json]")
            args.file = args.words[1]
            return _snapshot_info(args)
        if args.command == "images":
            return _images()
        if args.command == "bench":
            return _bench(args)
        if args.command is not None:
            from hvtui import commands
            return commands.run(args, parser)
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
    except Exception as e:          # a bug: one line here, the traceback in the monitor's log
        import logging
        import traceback
        from hvtui import paths
        handler = api.log_to_file()
        logging.getLogger("hvtui").error("hvtui %s failed:\n%s", " ".join(sys.argv[1:]),
                                         "".join(traceback.format_exception(e)))
        where = f" (traceback in {paths.monitor_log()})" if handler else ""
        _say(f"unexpected error: {type(e).__name__}: {e}{where}")
        return EXIT_ERROR


_ran_to_the_end = False     # a `hvtui run` whose monitor has closed: its guest, logs and files are done


def entry() -> None:
    """The `hvtui` command and `python -m hvtui`: main(), then the process's exit. After a
    `hvtui run` the monitor has closed (the guest ended, every log written and closed, the
    terminal restored) and nothing is left to do, so the process ends with os._exit once
    stdout and stderr are flushed: the interpreter's own finalization (every module torn
    down, the garbage collected, the threads' end waited for) would add 15-20 ms to a run
    QEMU does in 40 (`hvtui bench startup`). Every other command exits normally."""
    status = main()
    if not _ran_to_the_end:
        sys.exit(status)
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):    # a closed pipe, a closed or missing stream
            pass
    os._exit(status)


if __name__ == "__main__":
    entry()
