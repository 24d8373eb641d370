"""A 32-bit scratch register served in Python: the reference device for the cost of an
exit that reaches Python (hvtui bench exits), and a place tests can poke.

Reads return the last value written (little-endian, any width at any offset of its
4 bytes); it also counts its accesses. An observer (on_write) sees every value written:
guests mark benchmark phases this way (hvtui bench pv).
"""


class ScratchRegister:
    SIZE = 4

    def __init__(self):
        self.value = 0
        self.reads = 0
        self.writes = 0
        self.on_write = None      # callable(value), called on the writing vCPU's thread

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return (self.value >> (8 * offset)) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes += 1
        mask = ((1 << (8 * size)) - 1) << (8 * offset)
        self.value = (self.value & ~mask) | ((value << (8 * offset)) & mask)
        if self.on_write is not None:
            self.on_write(self.value)

    def save(self) -> dict:
        return {"value": self.value}

    def restore(self, state: dict) -> None:
        from hvtui.vmm.devices import saved
        saved.fields(state, ("value",), "scratch register")
        self.value = saved.integer(state, "value", 0, 0xFFFFFFFF, "scratch register")
