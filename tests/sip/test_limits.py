"""Pike/antiflood-style limiters: budgets, blocks, lockouts and call caps, on an injected clock.

Today none of these exist (issue 11: one source flooding INVITEs fills --max-calls, no lockout
after wrong passwords), so every test here fails on the old main by construction.
"""

from __future__ import annotations

from telephony.sip.limits import AuthLockout, CallCounter, Pike, RateLimiter
from telephony.sip.policy import SipPolicy, parse_networks, source_key


class Clock:
    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


TRUSTED = parse_networks("10.9.0.0/16")


# -- RateLimiter --------------------------------------------------------------------------
def test_token_bucket_allows_burst_then_rate():
    clock = Clock()
    lim = RateLimiter(5, 10, clock=clock)
    assert [lim.allow("a") for _ in range(11)] == [True] * 10 + [False]
    assert lim.allow("b")  # keys are independent
    clock.t += 0.2  # one token back at 5/s
    assert lim.allow("a") and not lim.allow("a")
    clock.t += 100  # refill is capped at the burst
    assert sum(lim.allow("a") for _ in range(20)) == 10


def test_token_bucket_tolerates_a_clock_going_backwards():
    clock = Clock()
    lim = RateLimiter(1, 1, clock=clock)
    assert lim.allow("a")
    clock.t -= 50
    assert not lim.allow("a")


def test_token_bucket_remembers_a_bounded_number_of_keys():
    clock = Clock()
    lim = RateLimiter(1, 2, clock=clock, max_keys=100)
    for _ in range(2):
        assert lim.allow("hot")
    for i in range(10_000):
        lim.allow(f"k{i}")
        if i % 50 == 0:
            assert not lim.allow("hot")  # recently used: never evicted while it is busy
    assert len(lim) <= 100


# -- Pike ---------------------------------------------------------------------------------
def test_pike_blocks_a_flooding_source_for_block_s_and_signals_once():
    clock = Clock()
    pike = Pike(SipPolicy(request_rate=10, request_burst=20, block_s=60), clock)
    results = [pike.check("203.0.113.5") for _ in range(20)]
    assert all(results) and not pike.newly_blocked
    assert not pike.check("203.0.113.5") and pike.newly_blocked  # the 21st request starts the block
    news = 0
    for _ in range(1000):  # still flooding: dropped, and the block is announced only once
        assert not pike.check("203.0.113.5")
        news += pike.newly_blocked
    assert news == 0 and pike.blocks == 1 and pike.blocked("203.0.113.5")
    assert pike.check("203.0.113.6")  # a legitimate neighbour is untouched
    clock.t += 59.9
    assert not pike.check("203.0.113.5")
    clock.t += 0.2
    assert not pike.blocked("203.0.113.5") and pike.check("203.0.113.5")  # block over, fresh budget
    assert pike.blocked_count() == 0


def test_pike_steady_traffic_under_the_rate_is_never_blocked():
    clock = Clock()
    pike = Pike(SipPolicy(request_rate=10, request_burst=20), clock)
    for _ in range(10_000):
        assert pike.check("198.51.100.1")
        clock.t += 0.11


def test_pike_exempts_trusted_networks():
    pike = Pike(SipPolicy(request_rate=1, request_burst=1, trusted=TRUSTED), Clock())
    assert all(pike.check("10.9.1.1") for _ in range(10_000))
    assert not pike.blocked("10.9.1.1") and pike.tracked() == 0


def test_pike_counts_an_ipv6_slash64_as_one_source():
    pike = Pike(SipPolicy(request_rate=1, request_burst=3), Clock())
    assert [pike.check(f"2001:db8:1:2::{i}") for i in range(1, 5)] == [True, True, True, False]
    assert pike.blocked("2001:db8:1:2:ffff::1") and not pike.blocked("2001:db8:1:3::1")
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_pike_state_is_bounded_and_fresh_sources_cannot_evict_a_block():
    clock = Clock()
    pike = Pike(SipPolicy(request_rate=1, request_burst=1, block_s=60, max_tracked_sources=100), clock)
    pike.check("203.0.113.9")
    assert not pike.check("203.0.113.9")
    for i in range(20_000):  # a spoofed spray of distinct sources, one request each
        pike.check(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert pike.tracked() <= 200
    assert pike.blocked("203.0.113.9")


def test_pike_bounds_the_blocked_table_too():
    clock = Clock()
    pike = Pike(SipPolicy(request_rate=1, request_burst=1, max_tracked_sources=50), clock)
    for i in range(5_000):
        ip = f"10.0.{i >> 8}.{i & 255}"
        pike.check(ip)
        pike.check(ip)
    assert pike.blocks == 5_000 and pike.blocked_count() <= 50 and pike.tracked() <= 100


# -- AuthLockout --------------------------------------------------------------------------
def test_lockout_after_n_failures_from_one_ip_even_with_the_right_password():
    clock = Clock()
    lock = AuthLockout(SipPolicy(auth_fail_limit=5, auth_fail_window_s=600, auth_lockout_s=600), clock)
    newly = [lock.record_failure("203.0.113.7", f"user{i}") for i in range(5)]
    assert newly == [(), (), (), (), ("ip",)]  # reported once, on the failure that locks
    assert lock.locked("203.0.113.7") and lock.locked("203.0.113.7", "alice")
    lock.record_success("203.0.113.7", "alice")  # a right password does not lift the lock
    assert lock.locked("203.0.113.7", "alice")
    assert lock.record_failure("203.0.113.7", "x") == ()  # no second report while locked
    assert not lock.locked("198.51.100.1", "alice")  # others are not affected
    clock.t += 599
    assert lock.locked("203.0.113.7")
    clock.t += 2  # the lock does not grow from failures recorded while locked
    assert not lock.locked("203.0.113.7")


def test_lockout_for_one_user_from_many_ips():
    lock = AuthLockout(SipPolicy(auth_fail_limit=5), Clock())
    newly = [lock.record_failure(f"198.51.100.{i}", "alice") for i in range(5)]
    assert newly[-1] == ("user",) and not any(newly[:-1])
    assert lock.locked("192.0.2.200", "alice") and not lock.locked("192.0.2.200", "bob")


def test_both_keys_can_lock_at_once():
    lock = AuthLockout(SipPolicy(auth_fail_limit=3), Clock())
    assert [lock.record_failure("203.0.113.1", "alice") for _ in range(3)][-1] == ("ip", "user")
    assert lock.lockouts == 2


def test_failures_spread_beyond_the_window_do_not_lock():
    clock = Clock()
    lock = AuthLockout(SipPolicy(auth_fail_limit=5, auth_fail_window_s=600), clock)
    for _ in range(50):
        assert lock.record_failure("203.0.113.8", "alice") == ()
        clock.t += 151  # 5 failures always span more than 600 s
    assert not lock.locked("203.0.113.8", "alice")


def test_success_clears_the_users_count_but_not_the_sources():
    lock = AuthLockout(SipPolicy(auth_fail_limit=3), Clock())
    lock.record_failure("203.0.113.1", "alice")
    lock.record_failure("203.0.113.1", "alice")
    lock.record_success("203.0.113.1", "alice")
    assert lock.record_failure("198.51.100.1", "alice") == ()  # alice starts again from 1
    assert lock.record_failure("203.0.113.1", "bob") == ("ip",)  # the source's third failure


def test_trusted_sources_are_never_locked():
    lock = AuthLockout(SipPolicy(auth_fail_limit=2, trusted=TRUSTED), Clock())
    assert all(lock.record_failure("10.9.0.1", "alice") == () for _ in range(10))
    assert not lock.locked("10.9.0.1", "alice") and lock.tracked() == 0


def test_lockout_tables_are_bounded():
    lock = AuthLockout(SipPolicy(auth_fail_limit=2, max_tracked_sources=100), Clock())
    for i in range(10_000):
        lock.record_failure(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", f"user{i}")
    assert lock.tracked() <= 200
    for i in range(5_000):  # now every one of them locks
        for _ in range(2):
            lock.record_failure(f"172.16.{i >> 8 & 255}.{i & 255}", "")
    assert lock.tracked() <= 200


# -- CallCounter --------------------------------------------------------------------------
def test_call_counter_caps_concurrent_calls_per_source():
    calls = CallCounter(SipPolicy(max_calls_per_source=2, trusted=TRUSTED))
    assert calls.acquire("203.0.113.1") and calls.acquire("203.0.113.1")
    assert not calls.acquire("203.0.113.1")
    assert calls.acquire("203.0.113.2")  # another source has its own slots
    calls.release("203.0.113.1")
    assert calls.count("203.0.113.1") == 1 and calls.acquire("203.0.113.1")
    assert all(calls.acquire("10.9.3.3") for _ in range(100))  # trusted: unlimited, not counted
    calls.release("10.9.3.3")
    for _ in range(5):  # extra releases never go negative or leave entries behind
        calls.release("203.0.113.1")
        calls.release("203.0.113.2")
    assert len(calls) == 0 and calls.acquire("203.0.113.1")
