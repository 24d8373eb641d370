"""A 32-bit scratch register served in Python: the reference device for the cost of an
exit that reaches Python (hvtui bench exits), and a place tests can poke.

Reads return the last value written (little-endian, any width at any offset of its
4 bytes); it also counts its accesses.
"""


class ScratchRegister:
    SIZE = 4

    def __init__(self):
        self.value = 0
        self.reads = 0
        self.writes = 0

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return (self.value >> (8 * offset)) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes += 1
        mask = ((1 << (8 * size)) - 1) << (8 * offset)
        self.value = (self.value & ~mask) | ((value << (8 * offset)) & mask)

    def save(self) -> dict:
        return {"value": self.value}

    def restore(self, state: dict) -> None:
        self.value = int(state["value"]) & 0xFFFFFFFF
