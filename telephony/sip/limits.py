"""Per-source abuse limits modelled on Kamailio's pike/antiflood, bounded and clock-injected.

- :class:`RateLimiter`: a token bucket per key (e.g. new INVITEs per source);
- :class:`Pike`: every request counts against a per-source budget; over budget, the source is
  ignored for ``block_s`` (the caller drops its packets silently and logs once per block);
- :class:`AuthLockout`: ``auth_fail_limit`` failures within the window from one source or for
  one user lock that source or user out for ``auth_lockout_s``, even with the right password;
- :class:`CallCounter`: concurrent calls per source.

Sources are counted by :func:`telephony.sip.policy.source_key` (IPv4 address, IPv6 /64) and
trusted networks (a proxy in front, a trunk) are exempt. Every table is bounded by count (LRU
eviction), so a stream of distinct sources cannot grow memory; the tables that matter for
defence (blocked sources, lockouts) are kept apart from the plain counters, so flooding the
counters with fresh sources cannot evict an active block. No I/O, no Django, no wall clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from telephony.sip.policy import SipPolicy, source_key

Clock = Callable[[], float]


class RateLimiter:
    """Token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up.

    At most ``max_keys`` buckets are remembered (least recently used forgotten first). A
    forgotten key starts again with a full bucket, which only favours quiet keys: a key that is
    sending is recently used and is not evicted.
    """

    def __init__(self, rate: float, burst: float, *, clock: Clock = time.monotonic, max_keys: int = 50_000) -> None:
        self.rate = float(rate)
        self.burst = float(max(burst, 1))
        self.clock = clock
        self.max_keys = max(1, max_keys)
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [tokens, last]

    def allow(self, key: Hashable) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = [self.burst, now]
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b[0] = min(self.burst, b[0] + max(0.0, now - b[1]) * self.rate)
            b[1] = now
        if b[0] >= 1.0 - 1e-9:  # tolerate float rounding in the refill (0.2 s * 5/s = 0.999...)
            b[0] = max(0.0, b[0] - 1.0)
            return True
        return False

    def forget(self, key: Hashable) -> None:
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


class Pike:
    """Per-source request budget; over budget -> the source is blocked for ``policy.block_s``.

    ``check(ip)`` counts the request and says whether to handle it. After a call that started a
    block, ``newly_blocked`` is True (and only then), so the caller logs once per block. A
    block lasts ``block_s`` from the moment it started; a source still flooding afterwards gets
    at most one burst through before it is blocked again.
    """

    def __init__(self, policy: SipPolicy, clock: Clock = time.monotonic, *, rate: float | None = None,
                 burst: float | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self._bucket = RateLimiter(policy.request_rate if rate is None else rate,
                                   policy.request_burst if burst is None else burst,
                                   clock=clock, max_keys=policy.max_tracked_sources)
        # key -> blocked until; insertion order == expiry order (block_s is fixed)
        self._blocked: OrderedDict[str, float] = OrderedDict()
        self.newly_blocked = False
        self.blocks = 0  # how many blocks were started, for the status counters

    def _prune(self, now: float) -> None:
        while self._blocked:
            key, until = next(iter(self._blocked.items()))
            if until > now:
                return
            del self._blocked[key]

    def blocked(self, ip: str) -> bool:
        """Whether ``ip`` is currently blocked (does not count a request)."""
        if self.policy.is_trusted(ip):
            return False
        now = self.clock()
        self._prune(now)
        until = self._blocked.get(source_key(ip))
        return until is not None and until > now

    def check(self, ip: str) -> bool:
        """Count one request from ``ip``; True to handle it, False to drop it silently."""
        self.newly_blocked = False
        if self.policy.is_trusted(ip):
            return True
        now = self.clock()
        self._prune(now)
        key = source_key(ip)
        if key in self._blocked:
            return False
        if self._bucket.allow(key):
            return True
        self._bucket.forget(key)  # a fresh budget once the block ends
        self._blocked[key] = now + self.policy.block_s
        if len(self._blocked) > self.policy.max_tracked_sources:
            self._blocked.popitem(last=False)  # the block nearest to its end goes first
        self.newly_blocked = True
        self.blocks += 1
        return False

    def blocked_count(self) -> int:
        self._prune(self.clock())
        return len(self._blocked)

    def tracked(self) -> int:
        """Sources remembered (counters + blocks); bounded by 2 x ``max_tracked_sources``."""
        return len(self._bucket) + len(self._blocked)


class AuthLockout:
    """Failed authentications per source and per user, and the lockouts they cause.

    ``auth_fail_limit`` failures within ``auth_fail_window_s`` from one source, or for one user,
    lock it for ``auth_lockout_s``: the gateway refuses it without checking the password (a
    delay alone is not a lockout). Failures while locked do not extend the lock. A success
    clears the user's failures but not the source's, so an attacker holding one valid account
    cannot reset a source's count between guesses at other accounts. Trusted sources are
    neither counted nor locked.
    """

    def __init__(self, policy: SipPolicy, clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.limit = max(1, policy.auth_fail_limit)
        self._fails: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()  # LRU
        self._locked: OrderedDict[tuple[str, str], float] = OrderedDict()  # until; expiry order
        self.lockouts = 0

    @staticmethod
    def _keys(ip: str, user: str) -> list[tuple[str, str]]:
        keys = [("ip", source_key(ip))]
        if user:
            keys.append(("user", user[:128]))
        return keys

    def _prune(self, now: float) -> None:
        while self._locked:
            key, until = next(iter(self._locked.items()))
            if until > now:
                return
            del self._locked[key]

    def _is_locked(self, key: tuple[str, str], now: float) -> bool:
        until = self._locked.get(key)
        return until is not None and until > now

    def locked(self, ip: str, user: str = "") -> bool:
        """Whether requests from ``ip`` (or for ``user``) must be refused without a check."""
        if self.policy.is_trusted(ip):
            return False
        now = self.clock()
        self._prune(now)
        return any(self._is_locked(k, now) for k in self._keys(ip, user))

    def record_failure(self, ip: str, user: str = "") -> tuple[str, ...]:
        """Count a failed authentication; returns what it newly locked: ("ip",), ("user",), both or ().

        Call it for wrong passwords and unknown users alike (they must look the same); a
        missing Authorization (the normal first challenge) or a stale nonce is not a failure.
        """
        if self.policy.is_trusted(ip):
            return ()
        now = self.clock()
        self._prune(now)
        window, newly = self.policy.auth_fail_window_s, []
        for key in self._keys(ip, user):
            if self._is_locked(key, now):
                continue
            times = self._fails.get(key)
            if times is None:
                times = self._fails[key] = deque(maxlen=self.limit)
                if len(self._fails) > self.policy.max_tracked_sources:
                    self._fails.popitem(last=False)
            else:
                self._fails.move_to_end(key)
            times.append(now)
            if len(times) >= self.limit and now - times[0] <= window:
                del self._fails[key]
                self._locked[key] = now + self.policy.auth_lockout_s
                self._locked.move_to_end(key)
                if len(self._locked) > self.policy.max_tracked_sources:
                    self._locked.popitem(last=False)
                newly.append(key[0])
                self.lockouts += 1
        return tuple(newly)

    def record_success(self, ip: str, user: str = "") -> None:
        """A good password: forget the user's failures (not the source's, see the class doc)."""
        if user:
            self._fails.pop(("user", user[:128]), None)

    def tracked(self) -> int:
        return len(self._fails) + len(self._locked)


class CallCounter:
    """Concurrent calls per source, capped at ``policy.max_calls_per_source``.

    Only sources with a call in progress are remembered, so the table is bounded by the
    bridge's own call limit. Trusted sources are not counted (their release is a no-op).
    """

    def __init__(self, policy: SipPolicy) -> None:
        self.policy = policy
        self._calls: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        """Take a call slot for ``ip``; False when it already has the maximum."""
        if self.policy.is_trusted(ip):
            return True
        key = source_key(ip)
        n = self._calls.get(key, 0)
        if n >= self.policy.max_calls_per_source:
            return False
        self._calls[key] = n + 1
        return True

    def release(self, ip: str) -> None:
        """Give back a slot taken by :meth:`acquire` (extra releases are ignored)."""
        if self.policy.is_trusted(ip):
            return
        key = source_key(ip)
        n = self._calls.get(key, 0) - 1
        if n > 0:
            self._calls[key] = n
        else:
            self._calls.pop(key, None)

    def count(self, ip: str) -> int:
        return self._calls.get(source_key(ip), 0)

    def __len__(self) -> int:
        return len(self._calls)
