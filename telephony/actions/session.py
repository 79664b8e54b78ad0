"""A call's tools between the agent and the runner: the per-turn config refresh, one round of
tool calls (results appended as ``tool`` messages, in the order the model asked), and the
ToolCall rows of the turn, and the transfer a built-in asked for. Kept out of the pipeline so it
only sees a few calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async

from aioptions.providers.base import LLMResult

from .runner import MAX_CALLS_PER_ROUND, Requests, ToolRunner

log = logging.getLogger("telephony.actions")
MAX_ROUNDS = 3  # tool -> reply -> tool ...: a model looping on tools is cut off here
# what the agent tells the caller when a transfer did not happen, by the dialled target's outcome
BACK = "I'm back with you. How else can I help?"
FAILED_SAYS = {
    "no_answer": "Sorry, they did not answer.",
    "busy": "Sorry, their line is busy.",
    "rejected": "Sorry, they could not take the call right now.",
    "hung_up": "Sorry, they hung up before I could connect you.",
}


def _load(campaign_id):
    from campaigns.tools import runtime_actions

    return runtime_actions(campaign_id)


def _save(call_record_id: int, turn_index: int, records: list[dict]) -> None:
    from telephony.models import ToolCall, Turn

    turn = Turn.objects.filter(call_id=call_record_id, index=turn_index).first()
    if turn is not None:
        ToolCall.objects.bulk_create([ToolCall(turn=turn, **r) for r in records])


class CallTools:
    def __init__(self, call, clock=None) -> None:
        self.call = call
        self.clock = clock
        self.runner: ToolRunner | None = None
        self.transferring = False  # the caller holds: their speech is not a turn (telephony.pipeline.agent)
        self._next: asyncio.Task | None = None  # the tools read at StartOfTurn, for the coming turn

    def prefetch(self) -> None:
        """Read the campaign's tools while the caller is still talking (StartOfTurn), so the turn's
        LLM request does not wait for the database: the bridge's ORM work shares one thread, which
        call set-ups and Turn rows keep busy under churn."""
        if self._next is None or self._next.done():
            self._next = asyncio.create_task(sync_to_async(_load)(getattr(self.call, "campaign_id", None)))
            # a read no turn takes (the caller stopped without a turn, or hung up) must not log
            # "exception never retrieved"; a turn that takes it still sees its error in refresh()
            self._next.add_done_callback(lambda t: t.cancelled() or t.exception())

    def cancel_prefetch(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None

    async def refresh(self) -> None:
        """Re-read the campaign's tools (an admin change reaches the next turn; the read started by
        ``prefetch`` when there was one); keep the last good set if the database is unreachable."""
        task, self._next = self._next, None
        try:
            actions = await (task or sync_to_async(_load)(getattr(self.call, "campaign_id", None)))
        except Exception:  # noqa: BLE001
            log.exception("call %s: tools could not be loaded", getattr(self.call, "call_id", "?"))
            if self.runner is not None:
                self.runner.requests = Requests()
            return
        self.runner = ToolRunner(self.call, actions, self.clock)

    def specs(self) -> list[dict]:
        return self.runner.specs() if self.runner is not None else []

    @property
    def requests(self) -> Requests:
        return self.runner.requests if self.runner is not None else Requests()

    async def run_round(self, result: LLMResult, say_filler: Callable[[], Awaitable[object]]) -> list[dict]:
        """Run the calls of one LLM round; return the assistant message that asked for them and
        one ``tool`` message per call (what the next LLM request needs, and the history keeps)."""
        calls = result.tool_calls[:MAX_CALLS_PER_ROUND]
        asked = {"role": "assistant", "content": result.text or None, "tool_calls": [
            {"id": c.id or f"call_{i}", "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(calls)]}
        messages = [asked]
        filler_said = False

        async def filler_once() -> None:
            nonlocal filler_said
            if not filler_said:
                filler_said = True
                await say_filler()

        for i, call in enumerate(calls):
            outcome = await self.runner.run_with_filler(call, filler_once)
            messages.append({"role": "tool", "tool_call_id": call.id or f"call_{i}", "content": outcome.content})
        return messages

    async def transfer(self, target: str, note: Callable[[str], None], say: Callable[[str], Awaitable[object]],
                       mode: str = "blind", brief: Callable[[object], Awaitable[object]] | None = None) -> str:
        """After "putting you through" (or "please hold") was heard: blind = REFER, or dial and
        bridge; warm = dial, ``brief`` the target, then bridge (telephony.media.transfer/warm).
        Bridged, the agent is replaced by the relay (this task is cancelled); failed, the caller
        stays with the agent, which says why. Returns what it said ('' when it said nothing)."""
        self.transferring = True
        try:
            if mode == "warm":
                how = await self.call.transfer(target, mode="warm", brief=brief)
            else:
                how = await self.call.transfer(target)
            log.info("call %s: %s transfer to %s: %s", getattr(self.call, "call_id", "?"), mode, target[:80], how)
            return ""
        except Exception as exc:  # noqa: BLE001 - the caller stays with the agent
            outcome = getattr(exc, "outcome", "")
            log.warning("call %s: %s transfer failed (%s %s)", getattr(self.call, "call_id", "?"), mode,
                        type(exc).__name__, outcome)
            note(f"{mode} transfer failed: {str(exc)[:120]}")
        finally:
            self.transferring = False
        text = f"{FAILED_SAYS[outcome]} {BACK}" if outcome in FAILED_SAYS else \
            "Sorry, I could not transfer you. How else can I help?"
        await say(text)
        return text

    async def save(self, call_record_id: int | None, turn_index: int) -> None:
        records = self.requests.records
        if call_record_id is None or not records:
            return
        try:
            await sync_to_async(_save)(call_record_id, turn_index, list(records))
        except Exception:  # noqa: BLE001 - a record must never break a call
            log.exception("could not store the tool calls of turn %s", turn_index)
        records.clear()

    def after_call(self, call_record_id: int | None) -> asyncio.Task | None:
        """Queue the post-call webhook and try it once; retries are the worker's (webhooks.worker).
        The delivery row is stored first (``preparing``), so a crash from here on loses nothing.
        The agent's cleanup calls this when it stops, which is not always the end of the call: after
        a bridged transfer the call goes on with the relay, so the payload waits for the real end,
        then for the bridge to write the Call row (end reason "transferred", duration, recording)."""
        if call_record_id is None:
            return None
        ended = getattr(self.call, "ended", None)

        async def go() -> None:
            from . import webhooks

            if await webhooks.after_call(call_record_id, wait_finished_s=webhooks.FINALISE_WAIT_S,
                                         ended=ended) is not None:
                await webhooks.deliver_due()

        return asyncio.get_running_loop().create_task(go())
