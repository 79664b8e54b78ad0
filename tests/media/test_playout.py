"""The playout queue and inbound frame queue shared by the RTP session, the browser call and the
in-memory call (telephony/rtp/playout.py)."""

import asyncio

from telephony.rtp.playout import FrameQueue, Playout


def test_marks_fire_on_the_tick_that_sends_their_first_byte():
    p, fired = Playout(frame=4), []
    p.put(b"aaaaaa", on_sent=lambda now: fired.append(("a", now)))
    p.put(b"bb", on_sent=lambda now: fired.append(("b", now)))  # starts at byte 6: the second frame
    assert len(p) == 8
    assert p.take(1.0) == b"aaaa" and fired == [("a", 1.0)]
    assert p.take(2.0) == b"aabb" and fired == [("a", 1.0), ("b", 2.0)]
    assert p.take(3.0) == b"" and not p


def test_clear_drops_the_audio_and_its_marks_and_later_marks_still_fire():
    p, fired = Playout(frame=4), []
    p.put(b"aaaa")
    p.put(b"bbbb", on_sent=fired.append)
    assert p.clear() == 8 and len(p) == 0
    assert p.take(1.0) == b"" and fired == []  # barge-in: what was never sent never reports as sent
    p.put(b"cc", on_sent=fired.append)
    assert p.take(2.0) == b"cc" and fired == [2.0]  # a short tail: the transport pads it


async def test_frame_queue_is_bounded_and_ends_after_close():
    q = FrameQueue(maxlen=2)
    assert q.push(b"1") and q.push(b"2")
    assert not q.push(b"3")  # full: the oldest is dropped and the caller told so
    got = []

    async def read() -> None:
        async for f in q.frames():
            got.append(f)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    assert got == [b"2", b"3"] and not reader.done()  # waiting for more, not finished
    q.push(b"4")
    q.close()
    await asyncio.wait_for(reader, 10)
    assert got == [b"2", b"3", b"4"]


async def test_drained_is_an_event_set_by_the_tick_that_sends_the_last_byte_or_by_clear():
    p = Playout(160)
    assert p.drained.is_set()
    p.put(b"\x01" * 200)
    assert not p.drained.is_set()
    waiter = asyncio.ensure_future(p.wait_drained(asyncio.Event(), 3600))
    await asyncio.sleep(0)  # the waiter parks on the event
    p.take(1.0)
    assert not p.drained.is_set() and not waiter.done()  # 40 bytes still queued
    p.take(1.02)
    await waiter  # the tick that took the last byte released it
    assert p.drained.is_set()
    p.put(b"\x01" * 160)
    p.clear()  # barge-in
    assert p.drained.is_set()


async def test_wait_drained_ends_when_the_call_ends():
    p, ended = Playout(160), asyncio.Event()
    p.put(b"\x01" * 1600)
    waiter = asyncio.ensure_future(p.wait_drained(ended, 3600))
    await asyncio.sleep(0)
    ended.set()
    await waiter
    assert len(p) == 1600  # nothing was sent: the wait ended because the call did
