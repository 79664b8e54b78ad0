"""Run any of the asyncio fake servers on a private event loop in a background thread.

For synchronous callers (Django ``call_command``, subprocess-driven tests, Selenium tests) that
cannot share the fake's loop:

    with in_thread(FakeFluxServer(api_key="k")) as srv:
        call_command("test_flux", "--url", srv.url)

The server object is returned as is; read its records after the block (or while it runs: lists
are appended to atomically).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def in_thread(server: T, *, timeout: float = 10.0) -> Iterator[T]:
    """Start ``server`` (anything with async ``start()``/``stop()``) on its own loop; stop it on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"fake-{type(server).__name__}", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout)
        yield server
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_rest(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()


async def _cancel_rest() -> None:
    """Cancel the server's leftover connection tasks so the loop closes without warnings."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
