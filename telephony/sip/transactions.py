"""Server transactions as far as a UAS needs them over UDP: the last response of each transaction,
replayed when the request is retransmitted, for as long as RFC 3261 keeps the transaction.

Bounded three ways so no stream of distinct Call-IDs or branches can grow memory: an age limit
(Timer J/H = 64*T1 = 32 s), a count limit and a byte limit; past a limit the oldest goes first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .timers import T1

Key = tuple[str, str, str]  # (branch, CSeq method, Call-ID)


class ResponseCache:
    def __init__(self, *, ttl: float = 64 * T1, max_entries: int = 4096, max_bytes: int = 2 << 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._items: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0
        self.evicted = 0

    def get(self, key: Key) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self.clock() - item[0] > self.ttl:
            self._pop(key)
            return None
        return item[1]

    def put(self, key: Key, raw: bytes) -> None:
        if key in self._items:
            self._pop(key)
        self._items[key] = (self.clock(), raw)
        self.bytes += len(raw)
        while self._items and (len(self._items) > self.max_entries or self.bytes > self.max_bytes):
            self._pop(next(iter(self._items)))
            self.evicted += 1

    def prune(self) -> int:
        """Drop expired transactions; insertion order is age order, so this stops at the first live one."""
        cutoff = self.clock() - self.ttl
        n = 0
        while self._items:
            key, (at, _) = next(iter(self._items.items()))
            if at > cutoff:
                break
            self._pop(key)
            n += 1
        return n

    def _pop(self, key: Key) -> None:
        _, raw = self._items.pop(key)
        self.bytes -= len(raw)

    def __len__(self) -> int:
        return len(self._items)
