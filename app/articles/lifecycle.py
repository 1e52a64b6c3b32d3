"""Drain state shared between the server's master process and its forked workers.

The master flips the flag on SIGTERM; every worker reads it to fail /readyz. An anonymous
shared mapping needs no writable file (the root filesystem is read-only) and survives
fork, so workers started later during the drain see it too.
"""

from __future__ import annotations

import mmap


class DrainFlag:
    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 1, flags=mmap.MAP_SHARED)

    def set(self) -> None:
        self._mem[0] = 1

    def clear(self) -> None:
        self._mem[0] = 0

    def is_set(self) -> bool:
        return self._mem[0] == 1


# One per process tree: created at import, i.e. in the master before workers fork.
DRAIN = DrainFlag()
