"""The work queue: deduplicated, and never two passes over one key at once."""

from __future__ import annotations

import asyncio

from steward.controllers.workqueue import WorkQueue


def test_keys_added_while_waiting_are_queued_once() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a"):
            queue.add(key)
        return [await queue.get(), await queue.get()] if len(queue) == 2 else []

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_key_added_while_running_is_handled_again_afterwards_not_concurrently() -> None:
    async def scenario() -> tuple[int, int]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # an event arrives during the pass
        waiting_during = len(queue)
        queue.done(key)
        return waiting_during, len(queue)

    assert asyncio.run(scenario()) == (0, 1)
