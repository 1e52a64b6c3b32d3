"""Run a coroutine on a loop of its own.

Not asyncio.run: it leaves the main thread with no current event loop, and the Pulumi mocks of
tests that share the worker process later ask for one (asyncio.get_event_loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
