"""A promoted speculation is read as its deltas arrive (woken by the Speculation's event, not by
polling every 5 ms), and dropped at its first-token deadline on the turn's clock; the call's
background tasks end with the call. A hand-driven clock: nothing here waits on wall-clock time."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from telephony.pipeline import fillers, llmflow
from telephony.pipeline.calltasks import CallTasks
from telephony.pipeline.fillers import TurnDeadlines
from telephony.pipeline.llmflow import Speculation, llm_deltas


class HeldClock(fillers.Clock):
    """Time moves only when the test calls ``advance``; ``sleep_until`` waits for that."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.moved = asyncio.Event()

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.moved.set()

    async def sleep_until(self, deadline: float) -> None:
        while self.t < deadline:
            self.moved.clear()
            await self.moved.wait()


class FakeStream:
    def __init__(self, requested_at: float, deltas: list[str] = ()) -> None:
        self.result = SimpleNamespace(requested_at=requested_at, tool_calls=[], text="")
        self.deltas = list(deltas)
        self.cancelled = False

    async def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for d in self.deltas:
            self.result.text += d
            yield d


@pytest.fixture(autouse=True)
def one_llm(monkeypatch, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT_S = 4.0
    monkeypatch.setattr(llmflow.factory, "fallback_llm_chain", lambda cfg: [("fake", "model"), ("fake", "backup")])


def agent(fresh: FakeStream | None = None, opened: list | None = None) -> SimpleNamespace:
    def open_stream(provider: str, model: str, messages: list) -> FakeStream | None:
        if opened is not None:
            opened.append((provider, model))
        return fresh
    return SimpleNamespace(cfg=None, open_stream=open_stream)


async def test_promoted_speculation_yields_each_delta_as_it_arrives():
    clock = HeldClock(100.0)
    stream = FakeStream(requested_at=100.0)
    spec = Speculation("book me", stream)
    feed: asyncio.Queue[str | None] = asyncio.Queue()

    async def prefetch() -> None:  # what TurnLoop._start_speculative runs, fed by the test
        while (d := await feed.get()) is not None:
            spec.buffered.append(d)
            stream.result.text += d
            spec.grew.set()
        spec.grew.set()

    task = asyncio.create_task(prefetch())
    got: list[str] = []
    deltas = llm_deltas(agent(), [], spec, task, [], TurnDeadlines(100.0, clock), apologise=None)
    reader = asyncio.create_task(_collect(deltas, got))
    for word in ("Sure", ", ", "Tuesday"):
        await feed.put(word)
        await _until_len(got, len(got) + 1)  # woken by the delta itself: the clock never moved
    assert got == ["Sure", ", ", "Tuesday"] and not reader.done()
    await feed.put(None)  # the speculation ends with text: the turn is answered, nothing asked again
    await asyncio.wait_for(reader, 10)
    assert got == ["Sure", ", ", "Tuesday"] and clock.now() == 100.0 and not stream.cancelled


async def test_a_silent_speculation_is_dropped_at_its_deadline_and_asked_again():
    clock = HeldClock(100.0)
    stream = FakeStream(requested_at=100.0)
    spec = Speculation("book me", stream)
    never = asyncio.create_task(asyncio.Event().wait())  # the speculation's prefetch: no token, ever
    apologies: list[float] = []

    async def apologise() -> None:
        apologies.append(clock.now())

    errors: list[str] = []
    got: list[str] = []
    opened: list = []
    deltas = llm_deltas(agent(FakeStream(101.0, ["Fresh answer."]), opened), [], spec, never, errors,
                        TurnDeadlines(100.0, clock, 1.0, 1.2), apologise)
    reader = asyncio.create_task(_collect(deltas, got))
    await asyncio.sleep(0)
    assert not reader.done() and not stream.cancelled  # before the deadline it only waits
    clock.advance(1.4)
    await asyncio.sleep(0)
    assert not stream.cancelled  # 1.4 s: still before the first-token deadline (1.5 s after request)
    clock.advance(0.2)
    await asyncio.wait_for(reader, 10)
    assert stream.cancelled and never.cancelled() and apologies == [pytest.approx(101.6)]
    assert errors == ["llm fake/model: timeout (speculation)"] and got == ["Fresh answer."]
    assert opened == [("fake", "backup")]  # the next in the chain, not the model that just timed out


async def test_call_tasks_end_with_the_call_and_failures_are_logged(caplog):
    tasks = CallTasks("c1")
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def broken() -> None:
        raise RuntimeError("boom")

    running = tasks.spawn(forever())
    with caplog.at_level(logging.ERROR, logger="telephony.pipeline"):
        failing = tasks.spawn(broken())
        await asyncio.wait([failing])
        await asyncio.sleep(0)  # the done callback runs
    await started.wait()
    assert len(tasks) == 1 and "background task failed" in caplog.text
    await tasks.aclose()
    assert running.cancelled() and len(tasks) == 0


async def _collect(deltas, got: list[str]) -> None:
    async for delta, _stream, _model in deltas:
        got.append(delta)


async def _until_len(items: list, n: int) -> None:
    async def wait() -> None:
        while len(items) < n:
            await asyncio.sleep(0)
    await asyncio.wait_for(wait(), 10)
