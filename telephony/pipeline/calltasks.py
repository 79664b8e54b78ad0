"""The call's background tasks in one owner, so none outlives the call or is lost.

A bare ``asyncio.create_task`` for a side job (pre-warming a provider, confirming a barge-in,
rendering filler clips) keeps running after the call has ended, can be garbage-collected while
it runs (the loop holds only a weak reference), and its exception is never seen. ``CallTasks``
keeps a strong reference to each, logs a failure, and at the call's end cancels what is still
running and waits for it — the same lifetime a TaskGroup gives, without one job's failure
cancelling the others (they are independent side jobs, not parts of one result).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("telephony.pipeline")


class CallTasks:
    def __init__(self, name: str) -> None:
        self.name = name  # the call id, for the log
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` alongside the call; it is cancelled when the call ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: background task failed", self.name, exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self, timeout: float = 1.0) -> None:
        """Cancel what is still running and wait for it (bounded: a task that ignores its
        cancellation must not hold the call's end)."""
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
