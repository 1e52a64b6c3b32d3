"""Per-pod view counters shared by the server's worker processes (no shared store configured).

Like the drain flag, an anonymous shared mapping created at import, i.e. in the server's main
process before it forks the workers, so every worker of the pod adds to the same numbers. A
multiprocessing lock (also created before the fork) makes each increment atomic; without it
two workers doing read-modify-write on the same slot would lose views.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct

SLOTS = 256  # articles; more than the site will ever have (checked when the app starts)
_SLOT = struct.Struct("<q")


class PodCounters:
    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self._mem = mmap.mmap(-1, _SLOT.size * slots, flags=mmap.MAP_SHARED)
        self._lock = multiprocessing.Lock()

    def incr(self, slot: int) -> int:
        offset = slot * _SLOT.size
        with self._lock:
            value = _SLOT.unpack_from(self._mem, offset)[0] + 1
            _SLOT.pack_into(self._mem, offset, value)
        return value

    def get(self, slot: int) -> int:
        with self._lock:
            return int(_SLOT.unpack_from(self._mem, slot * _SLOT.size)[0])


# One per process tree, created before the workers fork (server.py imports this module).
POD_COUNTERS = PodCounters()
