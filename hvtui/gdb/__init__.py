"""A gdb server for every guest: the GDB remote serial protocol over TCP, one client at a
time, driving one Machine through vmm/debug.py.

packets.py frames and parses packets (bounded), target.py describes and moves the x86-64
registers, session.py answers one client's commands, monitor.py its `monitor` commands,
server.py listens on the Host's asyncio loop.
"""
