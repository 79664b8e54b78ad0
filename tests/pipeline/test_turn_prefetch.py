"""A turn's database reads (its config and the campaign's tools) start at StartOfTurn, while the
caller is still talking, so at EndOfTurn the LLM request waits for no ORM round trip: the bridge
runs all ORM work on one thread, which call set-ups and Turn rows keep busy under churn."""

import asyncio
import threading

from aioptions.providers.base import TurnEvent
from campaigns.tools import RuntimeActions
from telephony.actions import session
from telephony.pipeline import store
from telephony.pipeline.agent import VoicePipelineAgent
from telephony.pipeline.turns import TurnMachine


class Call:
    call_id, record_id, campaign_id, codec = "c1", None, 7, "PCMU"
    playout_queued_bytes = 0


def _loader(reads: list, gate: threading.Event | None = None, fail: bool = False):
    def load(campaign_id):
        reads.append(campaign_id)
        if gate is not None:
            gate.wait(5)
        if fail:
            raise RuntimeError("database is down")
        return RuntimeActions(campaign_id, builtins=["end_call", "transfer_call"], transfer_targets=["200"])

    return load


async def test_start_of_turn_starts_both_reads_before_end_of_turn(monkeypatch):
    tool_reads: list = []
    config_reads: list = []
    monkeypatch.setattr(session, "_load", _loader(tool_reads))

    async def resolve(campaign_id):
        config_reads.append(campaign_id)
        return None, None

    monkeypatch.setattr(store, "resolve_config", resolve)
    agent = VoicePipelineAgent(Call())
    agent.machine = TurnMachine(eager_enabled=False)
    await agent._handle(TurnEvent("StartOfTurn", 0))
    pending_tools = agent.tools._next
    await asyncio.gather(agent.state.cfg_task, pending_tools)
    assert config_reads == [7] and tool_reads == [7]  # both read while the caller speaks

    await agent.tools.refresh()  # the turn: takes what was read, reads nothing more
    assert tool_reads == [7]
    assert "transfer_call" in {s["function"]["name"] for s in agent.tools.specs()}


async def test_refresh_without_prefetch_reads_then_and_each_prefetch_is_used_once(monkeypatch):
    reads: list = []
    monkeypatch.setattr(session, "_load", _loader(reads))
    tools = session.CallTools(Call())
    await tools.refresh()  # a DTMF turn has no StartOfTurn: read now
    assert reads == [7]
    tools.prefetch()
    tools.prefetch()  # a second StartOfTurn while the first read is pending starts no second read
    await tools.refresh()
    await tools.refresh()  # the prefetched result was used by the turn before: read again
    assert reads == [7, 7, 7]


async def test_turn_waits_for_a_read_still_in_flight(monkeypatch):
    reads: list = []
    gate = threading.Event()
    monkeypatch.setattr(session, "_load", _loader(reads, gate))
    tools = session.CallTools(Call())
    tools.prefetch()
    turn = asyncio.create_task(tools.refresh())
    await asyncio.sleep(0)
    assert not turn.done()
    gate.set()
    await turn
    assert reads == [7] and tools.runner is not None


async def test_a_failed_prefetch_keeps_the_last_good_tools(monkeypatch):
    reads: list = []
    monkeypatch.setattr(session, "_load", _loader(reads))
    tools = session.CallTools(Call())
    await tools.refresh()
    good = tools.runner
    monkeypatch.setattr(session, "_load", _loader(reads, fail=True))
    tools.prefetch()
    await tools.refresh()
    assert tools.runner is good and len(reads) == 2


async def test_hang_up_cancels_a_pending_read(monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(session, "_load", _loader([], gate))
    tools = session.CallTools(Call())
    tools.prefetch()
    pending = tools._next
    tools.cancel_prefetch()
    gate.set()
    await asyncio.gather(pending, return_exceptions=True)
    assert pending.cancelled() and tools._next is None


async def test_a_failed_read_no_turn_takes_is_not_reported_as_unretrieved(monkeypatch):
    import gc

    monkeypatch.setattr(session, "_load", _loader([], fail=True))
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        tools = session.CallTools(Call())
        tools.prefetch()  # StartOfTurn, then the caller stops without a turn
        await asyncio.wait([tools._next])
        tools.prefetch()  # the next StartOfTurn replaces the failed read nobody took
        await asyncio.wait([tools._next])
        tools.cancel_prefetch()  # hang-up
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert not [c for c in reported if "never retrieved" in c.get("message", "")], reported
