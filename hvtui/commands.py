"""The virsh-style commands on the user's monitor: ls, start, console, pause, resume, stop,
kill, reset, rm, snapshot, restore, clone, logs, stats, kill-server.

Each is a client of the daemon through hvtui.client (only `start` starts a monitor when
none runs, as `tmux new` does); each error is one line on stderr and exit status 1.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

from hvtui import api, client
from hvtui.api import SERIAL
from hvtui.errors import ConfigError, HvError

DETACH_KEY = b"\x1d"    # Ctrl-]
CONSOLE_REPLAY = 4096   # bytes of history shown when a console attaches
LOG_CHUNK = 1 << 20
FOLLOW_S = 0.2

SIMPLE = {"pause": "pause", "resume": "resume", "stop": "stop", "kill": "kill", "reset": "reset", "rm": "remove"}
SIMPLE_HELP = {"pause": "pause a guest (its vCPUs park)", "resume": "resume a paused guest",
               "stop": "stop a guest (it ends 'stopped')", "kill": "kill a guest now (it ends 'killed')",
               "reset": "hard reset: the guest boots again from its kernel", "rm": "remove an ended guest"}


def add_parsers(sub, add_guest_options) -> None:
    ls = sub.add_parser("ls", help="list the monitor's guests")
    ls.add_argument("--json", action="store_true")
    start = sub.add_parser("start", help="start a guest in the monitor (starting the monitor if needed); "
                                         "returns at once. NAME of an ended guest: start it again")
    start.add_argument("image", metavar="IMAGE|NAME",
                       help="a built-in image or kernel file (as `hvtui run`), or the name of a guest "
                            "that ended, to boot it again from its spec")
    add_guest_options(start)
    con = sub.add_parser("console", help="attach to a guest's console (Ctrl-] detaches; the guest goes on)")
    con.add_argument("name")
    con.add_argument("--console", default=SERIAL,
                     help="serial (COM1, default), hvc0 (virtio-console) or vga (its screen, drawn here; keys "
                          "go to its PS/2 keyboard)")
    for cmd, what in SIMPLE_HELP.items():
        p = sub.add_parser(cmd, help=what)
        p.add_argument("names", nargs="+", metavar="NAME")
    snap = sub.add_parser("snapshot", help="`snapshot NAME FILE`: save a live snapshot of a guest; "
                                           "`snapshot info FILE [--json]`: verify a file and say what it holds")
    snap.add_argument("words", nargs="+", metavar="NAME FILE | info FILE")
    snap.add_argument("--json", action="store_true")
    restore = sub.add_parser("restore", help="a new guest in the monitor from a snapshot file")
    restore.add_argument("file")
    restore.add_argument("--name", default=None, help="its name (default: the snapshot's, or a free variant)")
    restore.add_argument("--disk", default=None, metavar="FILE",
                         help="the disk to give it; required when the snapshot's guest had one (`hvtui snapshot "
                              "info` names it): give that path to reopen it read-write")
    restore.add_argument("--disk-readonly", action="store_true", help="the disk refuses writes")
    restore.add_argument("--overcommit", action="store_true",
                         help="restore even if the host (or its memory cgroup) cannot promise all its RAM")
    clone = sub.add_parser("clone", help="a live snapshot of a guest, restored as a new guest N")
    clone.add_argument("name")
    clone.add_argument("new_name", metavar="N")
    clone.add_argument("--file", default=None, help="where the snapshot goes (default: the snapshot folder)")
    logs = sub.add_parser("logs", help="the console log of a guest's current run")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what comes (Ctrl-C ends)")
    logs.add_argument("--console", default=SERIAL, help="serial (default) or hvc0")
    gdb = sub.add_parser("gdb", help="serve the GDB remote protocol for a guest; prints the target remote line")
    gdb.add_argument("name")
    gdb.add_argument("--address", default=None, metavar="[HOST:]PORT",
                     help="where to listen (default 127.0.0.1, the first free port from 1234)")
    stats = sub.add_parser("stats", help="a guest's rates: exits/s by reason, CPU, memory, ports")
    stats.add_argument("name")
    stats.add_argument("--json", action="store_true")


def run(args, parser) -> int:
    if args.command == "snapshot" and len(args.words) != 2:
        parser.error("usage: hvtui snapshot NAME FILE, or hvtui snapshot info FILE [--json]")
    return asyncio.run(_run(args))


def _say(msg: str) -> None:
    print(f"hvtui: {msg}", file=sys.stderr, flush=True)


async def _run(args) -> int:
    if args.command == "start":
        await asyncio.to_thread(client.ensure_server)
    monitor = client.RemoteMonitor()
    await monitor.open()
    try:
        return await COMMANDS[args.command](monitor, args)
    finally:
        await monitor.close()


# ---- the commands ----
async def cmd_kill_server(monitor: client.RemoteMonitor, args) -> int:
    live = sum(1 for g in monitor.guests() if g.state.live)
    await monitor.shutdown()
    print(f"monitor {monitor.pid} stopped ({live} live guest(s) ended)")
    return 0


def _table(views: list[api.GuestView]) -> str:
    from hvtui.tui.format import human_rate, uptime   # plain helpers, no Textual
    rows = [("NAME", "STATE", "IMAGE", "VCPUS", "MEMORY", "UPTIME", "EXITS/S", "CPU%")]
    for g in sorted(views, key=lambda v: v.name):
        live = g.state == api.State.RUNNING
        rows.append((g.name, g.status, os.path.basename(g.spec.image), str(g.spec.vcpus),
                     f"{g.spec.memory_mib} MiB", uptime(g.uptime_s), human_rate(g.exits_per_s) if live else "-",
                     f"{g.cpu_percent:.0f}" if live else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


async def cmd_ls(monitor, args) -> int:
    views = monitor.guests()
    if args.json:
        print(json.dumps([_summary(g) for g in sorted(views, key=lambda v: v.name)], indent=2))
    elif views:
        print(_table(views))
    else:
        print("no guests (hvtui start IMAGE)")
    return 0


def _summary(g: api.GuestView) -> dict:
    return {"name": g.name, "state": g.state.value, "status": g.status, "run": g.run,
            "end": api.to_wire(g.end), "spec": api.to_wire(g.spec), "uptime_s": round(g.uptime_s, 3),
            "exits_per_s": round(g.exits_per_s, 1), "cpu_percent": round(g.cpu_percent, 1),
            "resident_bytes": g.resident_bytes, "log": g.log, "consoles": list(g.consoles),
            "preferred_console": g.preferred_console}


async def cmd_start(monitor, args) -> int:
    existing = monitor.guest(args.image)
    defaults = (args.memory, args.vcpus, args.cmdline, args.initrd, args.name, args.disk) == (64, 1, None, None, "", None)
    if existing is not None and defaults:
        view = await monitor.start(existing.name)
        print(f"{view.name}: started again (run {view.run})")
        return 0
    from hvtui.cli import spec_from_args
    view = await monitor.create(spec_from_args(args))
    print(f"{view.name}: {view.state.value} ({os.path.basename(view.spec.image)}, {view.spec.memory_mib} MiB, "
          f"{view.spec.vcpus} vCPU(s); log {view.log})")
    return 0


async def cmd_simple(monitor, args) -> int:
    status = 0
    method = getattr(monitor, SIMPLE[args.command])
    for name in args.names:
        try:
            await method(name)
        except HvError as e:
            _say(str(e))
            status = 1
            continue
        g = monitor.guest(name)
        print(f"{name}: {g.status if g else 'removed'}")
    return status


async def cmd_snapshot(monitor, args) -> int:
    name, path = args.words
    info = await monitor.snapshot(name, os.path.abspath(path))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{name}: saved to {info['path']} ({info['allocated_bytes'] / 2**20:.1f} MiB on disk, "
              f"{info['save_ms']:.0f} ms); {monitor.view(name).status}")
    return 0


async def cmd_restore(monitor, args) -> int:
    saved_disk = (await asyncio.to_thread(api.snapshot_info, args.file))["disk"]
    if saved_disk and not args.disk:
        raise HvError(f"{args.file}: the snapshot's guest had the disk {saved_disk}, which restore would open "
                      f"read-write: pass --disk {saved_disk} to reopen it (or --disk FILE for another)")
    view = await monitor.restore(os.path.abspath(args.file), name=args.name, overcommit=args.overcommit,
                                 disk=os.path.abspath(args.disk) if args.disk else None,
                                 disk_readonly=args.disk_readonly)
    print(f"{view.name}: restored from {args.file}, {view.state.value}")
    return 0


async def cmd_clone(monitor, args) -> int:
    views = await monitor.clone(args.name, [args.new_name], os.path.abspath(args.file) if args.file else None)
    print(f"{views[0].name}: a clone of {args.name}, {views[0].state.value}")
    return 0


async def cmd_gdb(monitor, args) -> int:
    print(await monitor.gdb(args.name, args.address))
    return 0


async def cmd_stats(monitor, args) -> int:
    g = monitor.view(args.name)
    if args.json:
        data = _summary(g) | {"by_reason": g.by_reason, "vcpus": api.to_wire(g.vcpu_rates),
                              "ports": [{"port": p, "exits": n} for p, n in g.ports],
                              "silent_s": g.silent_s, "unowned_accesses": g.unowned_accesses,
                              "console_bytes": g.console_bytes, "threads": list(g.threads)}
        print(json.dumps(data, indent=2))
        return 0
    print(f"{g.name}: {g.status}, run {g.run}, up {g.uptime_s:.1f} s, {os.path.basename(g.spec.image)}, "
          f"{g.spec.memory_mib} MiB ({g.resident_bytes / 2**20:.1f} MiB resident), {g.spec.vcpus} vCPU(s)")
    print(f"  exits/s   {g.exits_per_s:,.0f}" + "".join(
        f"  {k} {v:,.0f}" for k, v in sorted(g.by_reason.items(), key=lambda kv: -kv[1])))
    print(f"  CPU       {g.cpu_percent:.1f} % of a host CPU")
    for i, r in enumerate(g.vcpu_rates):
        print(f"  vCPU{i}     {r.exits_per_s:,.0f} exits/s, {r.cpu_percent:.1f} % CPU, "
              f"{r.run_share * 100:.0f} % in KVM_RUN")
    if g.ports:
        print("  ports     " + ", ".join(f"{p:#06x}: {n:,}" for p, n in g.ports))
    print("  consoles  " + ", ".join(f"{k} {n:,} bytes" for k, n in g.console_bytes.items()))
    print(f"  log       {g.log}")
    return 0


async def cmd_logs(monitor, args) -> int:
    out = sys.stdout.buffer
    g = monitor.view(args.name)
    run, offset = g.run, 0
    while True:
        data = await monitor.read_log(args.name, offset, LOG_CHUNK, args.console)
        if data:
            out.write(data)
            out.flush()
            offset += len(data)
            continue
        if not args.follow:
            return 0
        await asyncio.sleep(FOLLOW_S)
        g = monitor.guest(args.name)
        if g is None:
            _say(f"{args.name} was removed")
            return 0
        if g.run != run:               # started again: the rest of the last run's log, then the new one's
            while data := await monitor.read_log(args.name, offset, LOG_CHUNK, args.console, run=run):
                out.write(data)
                offset += len(data)
            run, offset = g.run, 0
            out.write(f"\n[hvtui] {args.name}: run {run}\n".encode())


async def cmd_console(monitor, args) -> int:
    """Attach like `virsh console`: recent output, then the stream; keys go to the guest;
    Ctrl-] detaches and the guest goes on."""
    name, console = args.name, args.console
    g = monitor.view(name)
    if console not in g.consoles:
        raise ConfigError(f"{name} has no console {console!r}; it has {', '.join(g.consoles)}")
    out = sys.stdout.buffer
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    why = {"text": "", "status": 0}
    first = [True]

    def show(data: bytes) -> None:
        if first[0]:
            first[0] = False
            if len(data) >= CONSOLE_REPLAY and b"\n" in data:
                data = data[data.index(b"\n") + 1:]
        out.write(data)
        out.flush()

    def on_event(event: api.Event) -> None:
        if isinstance(event, api.GuestChanged) and event.guest.name == name and not event.guest.state.live:
            why["text"] = f"{name} {event.guest.status}"
            done.set()
        elif isinstance(event, api.GuestRemoved) and event.name == name:
            why["text"] = f"{name} was removed"
            done.set()
        elif isinstance(event, api.Gone):
            why.update(text=event.reason, status=1)
            done.set()
        elif isinstance(event, api.Resync):
            out.write(b"\r\n[hvtui: this console fell behind; some output was not shown]\r\n")
    monitor.subscribe(on_event)
    if not g.state.live:
        why["text"] = f"{name} {g.status}"
    view = None
    if console == api.VGA:               # a screen: drawn here, keys to its PS/2 keyboard
        from hvtui.vgaterm import VgaTerminal
        view = VgaTerminal(monitor, name, out, os.isatty(out.fileno()))
        view.start()
        unwatch = lambda: None          # noqa: E731
    else:
        unwatch = monitor.watch_console(name, console, show, replay=CONSOLE_REPLAY, attach=True)
    fd = sys.stdin.fileno() if sys.stdin and not sys.stdin.closed else None
    interactive = fd is not None and os.isatty(fd)
    from hvtui.cli import _RawStdin
    from hvtui.stdin_pump import StdinPump
    detached = asyncio.Event()
    # the guest goes on when stdin ends; Ctrl-] detaches from a pipe too
    pump = None if fd is None else StdinPump(monitor, name, fd, True, DETACH_KEY, "keep", console=console,
                                             deliver=view.send if view is not None else None)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, detached.set)
    print(f"hvtui: connected to {name} ({console}); Ctrl-] detaches", file=sys.stderr, flush=True)
    with _RawStdin() if interactive else contextlib.nullcontext():
        if g.state.live:
            waiters = [asyncio.create_task(done.wait()), asyncio.create_task(detached.wait())]
            if pump is not None:
                pump.start()
                waiters.append(asyncio.create_task(pump.detached.wait()))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for t in waiters:
                t.cancel()
            if pump is not None and pump.detached.is_set():
                detached.set()
        else:
            await asyncio.sleep(0.2)        # the replay of an ended guest's last words
        if pump is not None:
            pump.close()
        unwatch()
        if view is not None:
            await view.close()
    if detached.is_set():
        why["text"] = f"detached from {name}; it goes on ({monitor.view(name).status})" if monitor.guest(name) else \
            f"detached from {name}"
    print(f"\r\nhvtui: {why['text']}", file=sys.stderr, flush=True)
    return why["status"]


COMMANDS = {"ls": cmd_ls, "start": cmd_start, "console": cmd_console, "snapshot": cmd_snapshot,
            "restore": cmd_restore, "clone": cmd_clone, "logs": cmd_logs, "stats": cmd_stats, "gdb": cmd_gdb,
            "kill-server": cmd_kill_server, **{c: cmd_simple for c in SIMPLE}}
