"""A guest's lifecycle states (DESIGN §4), the one enum both the machine (hvtui.vmm) and
its clients (hvtui.api) name: a module of its own so that neither imports the other."""
import enum


class State(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    CRASHED = "crashed"

    @property
    def live(self) -> bool:
        return self in (State.CREATED, State.RUNNING, State.PAUSED)
