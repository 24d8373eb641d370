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
from hvtui.errors import HvError

EXIT_ERROR, EXIT_CRASH, EXIT_TIMEOUT, EXIT_INTERRUPT = 1, 3, 124, 130
DETACH_KEY = b"\x1d"   # Ctrl-]


def _say(msg: str) -> None:
    print(f"hvtui: {msg}", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvtui", description="A Type-2 hypervisor you drive from a terminal.")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run one guest with its console on this terminal")
    run.add_argument("image", help="a built-in image name (see `hvtui images`) or a path to an ELF64 file")
    run.add_argument("--memory", type=_positive_int, default=64, metavar="MiB", help="guest RAM in MiB (64)")
    run.add_argument("--vcpus", type=_positive_int, default=1, metavar="N", help="vCPUs (1)")
    run.add_argument("--cmdline", default=None, metavar="STR", help="guest command line")
    run.add_argument("--timeout", type=float, default=None, metavar="S", help="stop the guest after S seconds (exit 124)")
    run.add_argument("--name", default="", help="guest name (for the log file)")
    run.add_argument("--watchdog", type=float, default=5.0, metavar="S",
                     help="crash a vCPU stuck S seconds with interrupts off and no exits (0: off)")
    run.add_argument("--log-dir", default=None, help="where console logs go")
    run.add_argument("-v", "--verbose", action="store_true", help="monitor messages on stderr")

    sub.add_parser("images", help="list the built-in guest images")

    bench = sub.add_parser("bench", help="benchmarks, each against a reference measured in the same run")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    ex = bench_sub.add_parser("exits", help="port-I/O exits/s: C hot path vs a raw KVM_RUN loop vs Python")
    ex.add_argument("--json", action="store_true")
    ex.add_argument("--runs", type=_positive_int, default=5)
    ex.add_argument("--count", type=_positive_int, default=20000, help="exits per run")
    return p


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
    async with Host(log_dir=args.log_dir) as host:
        spec = GuestSpec(image=args.image, name=args.name, memory_mib=args.memory, vcpus=args.vcpus,
                         cmdline=args.cmdline, watchdog_s=args.watchdog)
        guest = await host.create(spec, start=False)

        def to_stdout(data: bytes) -> None:
            out.write(data)
            out.flush()
        host.console_subscribe(guest.name, to_stdout)
        if args.verbose:
            _say(f"{guest.name}: {args.memory} MiB, {args.vcpus} vCPU(s), log {guest.log_path}")

        loop = asyncio.get_running_loop()
        detached = asyncio.Event()
        stdin_fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
        interactive = stdin_fd is not None and os.isatty(stdin_fd)

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
                host.send_input(guest.name, data)

        with _RawStdin() if interactive else contextlib.nullcontext():
            if stdin_fd is not None:
                with contextlib.suppress(OSError, ValueError, PermissionError):
                    loop.add_reader(stdin_fd, on_stdin)
            guest.machine.start()
            ended = asyncio.create_task(host.wait_until_ended(guest.name))
            waiters = {ended, asyncio.create_task(detached.wait())}
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
                _say(f"{guest.name}: timed out after {args.timeout:g}s; guest stopped")
                return EXIT_TIMEOUT

        m = guest.machine
        if m.state == State.CRASHED:
            _say(f"{guest.name} crashed: {m.crash.summary()} (register dump in {guest.log_path})")
            if args.verbose:
                print(m.crash.format(), file=sys.stderr)
            return EXIT_CRASH
        if m.exit_code is None:
            if args.verbose:
                _say(f"{guest.name}: {m.stop_reason}")
            return 0
        if args.verbose:
            _say(f"{guest.name}: exit status {m.exit_code}")
        return m.exit_code & 0xFF


def _images() -> int:
    width = max(len(n) for n in images.BUILTINS)
    for name, img in images.BUILTINS.items():
        print(f"{name:<{width}}  {img.description}")
    return 0


def _bench(args) -> int:
    if args.bench == "exits":
        from hvtui.bench.exits import main as bench_exits
        return bench_exits(args)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return asyncio.run(_run(args))
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
