"""A work queue of object keys, as controllers need it: deduplicated, one worker per key.

A key added while queued is queued once; a key added while a worker handles it is handled again
afterwards (the change may have come too late for the running pass), never concurrently. So any
number of events about one object cost at most one pass in progress and one waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._running: set[K] = set()
        self._again: set[K] = set()

    def add(self, key: K) -> None:
        """Ask for one more pass over ``key``."""
        if key in self._running:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> K:
        """The next key; the caller must call :meth:`done` with it when finished."""
        key = await self._queue.get()
        self._waiting.discard(key)
        self._running.add(key)
        return key

    def done(self, key: K) -> None:
        self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting)
