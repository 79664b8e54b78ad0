"""The LLM side of a turn: deltas from the promoted speculation or a fresh request, walking the
fallback chain (same provider's other model -> the other keyed provider -> the offline script) on
an error or when the first token misses its deadline (fillers.TurnDeadlines). A missed deadline is
spoken as an apology before the next attempt, once per turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from aioptions.providers import factory
from aioptions.providers.base import LLMError

from .fillers import TurnDeadlines

log = logging.getLogger("telephony.pipeline")


class LLMChainExhausted(Exception):
    """Every LLM in the chain failed: the turn cannot be answered."""


@dataclass
class Speculation:
    """An LLM request started on EagerEndOfTurn, before the caller's turn is final: its deltas are
    buffered (nothing is spoken or stored) until EndOfTurn promotes it or TurnResumed drops it.
    ``grew`` is set at each buffered delta and at the stream's end, so the turn that promotes it
    waits for news instead of polling."""

    transcript: str
    stream: Any
    buffered: list[str] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)


async def _news(spec: Speculation, spec_task: asyncio.Task | None, deadline: float, clock) -> None:
    """Until the speculation has a new delta or has ended — or, while it has said nothing yet,
    until its first-token deadline on the turn's clock (which tests drive by hand)."""
    waits: list[asyncio.Future] = [asyncio.ensure_future(spec.grew.wait())]
    if not spec.buffered:
        waits.append(asyncio.ensure_future(clock.sleep_until(deadline)))
    if spec_task is not None:
        waits.append(spec_task)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            if w is not spec_task:
                w.cancel()


async def _first(it, deadline: float, clock) -> str:
    return await asyncio.wait_for(it.__anext__(), max(0.05, deadline - clock.now()))


async def llm_deltas(agent, messages: list[dict], spec: Speculation | None, spec_task: asyncio.Task | None,
                     errors: list[str], deadlines: TurnDeadlines,
                     apologise: Callable[[], Awaitable[None]]) -> AsyncIterator[tuple[str, object, tuple[str, str]]]:
    """Yield (delta, stream, (provider, model)). Raises LLMChainExhausted if nothing answers."""
    timeout = settings.LLM_FIRST_TOKEN_TIMEOUT_S
    clock = deadlines.clock
    chain = factory.fallback_llm_chain(agent.cfg)
    attempt = 0
    if spec is not None:
        stream, buffered = spec.stream, spec.buffered
        deadline = deadlines.first_token_deadline(stream.result.requested_at, timeout, 0)
        done = 0
        while True:
            spec.grew.clear()  # before reading the buffer: a delta appended after this wakes _news
            while done < len(buffered):
                done += 1
                yield buffered[done - 1], stream, chain[0]
            if spec_task is None or spec_task.done():
                if done >= len(buffered) and stream.result.tool_calls:
                    yield "", stream, chain[0]  # the speculation asked for tools: the caller runs them
                    return
                if done >= len(buffered) and stream.result.text:
                    return
                if done >= len(buffered):
                    break  # the speculation failed: ask again below
            elif not buffered and clock.now() >= deadline:
                await stream.cancel()
                spec_task.cancel()
                errors.append(f"llm {chain[0][0]}/{chain[0][1]}: timeout (speculation)")
                await apologise()
                chain, attempt = chain[1:], 1
                break
            await _news(spec, spec_task, deadline, clock)
    for provider, model in chain:
        stream = agent.open_stream(provider, model, messages)
        it = stream.__aiter__()
        deadline = deadlines.first_token_deadline(clock.now(), timeout, attempt)
        attempt += 1
        try:
            first = await _first(it, deadline, clock)
        except StopAsyncIteration:
            if stream.result.tool_calls:  # only function calls, no text: hand the stream over
                yield "", stream, (provider, model)
            return
        except (TimeoutError, LLMError) as exc:
            kind = getattr(exc, "kind", "timeout")
            errors.append(f"llm {provider}/{model}: {kind}")
            log.warning("LLM %s/%s failed (%s); trying the next", provider, model, kind)
            await stream.cancel()
            if kind == "timeout":
                await apologise()
            continue
        yield first, stream, (provider, model)
        try:
            async for d in it:
                yield d, stream, (provider, model)
        except LLMError as exc:
            errors.append(f"llm {provider}/{model} mid-stream: {exc.kind}")
        if stream.result.tool_calls:  # text, then function calls: the caller runs them
            yield "", stream, (provider, model)
        return
    raise LLMChainExhausted("no LLM answered")
