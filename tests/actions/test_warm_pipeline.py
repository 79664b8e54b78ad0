"""A warm transfer asked by the model, through the whole pipeline: the fake LLM streams a
``transfer_call`` with ``mode: warm``; after "please hold" the agent asks the call to transfer,
its ``brief`` writes the summary with one LLM request and speaks it with the call's TTS on the
target's leg (a second in-memory call); when the transfer fails the caller hears why and the call
goes on with the agent (the sentence is in the model's history)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from aioptions.fakes.openai_server import ToolCalls
from campaigns import tools as campaign_tools
from telephony.actions import summary
from telephony.media.call import TransferFailed
from telephony.media.memcall import FakeCall
from telephony.pipeline.agent import VoicePipelineAgent
from tests.pipeline.conftest import call_row, campaign, cloud  # noqa: F401 - fixtures

# real-time calls (paced media, fake providers with real delays): not in the fast default
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SUMMARY = "Dana wants her Monday appointment moved to Tuesday."


def llm_reply(messages):
    if messages[0]["content"] == summary.PROMPT:  # the brief's request
        return SUMMARY
    if messages[-1]["role"] == "tool":
        return "Please hold while I connect you."
    return ToolCalls(calls=[("transfer_call", {"target": "200", "mode": "warm"})], arg_piece=6)


class TransferringCall(FakeCall):
    """The caller's call; its transfer answers like the gateway when the target hangs up after
    hearing the summary (``telephony.media.warm``)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.asked: list[tuple[str, str]] = []
        self.leg: FakeCall | None = None
        self.briefed = asyncio.Event()

    async def transfer(self, target: str, mode: str = "blind", brief=None) -> str:
        self.asked.append((target, mode))
        self.leg = FakeCall(codec="PCMA")  # the target answered with the other law
        try:
            await brief(self.leg)
        finally:
            self.leg._end("bye")
            self.briefed.set()
        raise TransferFailed("the target hung up during the summary", "hung_up")


async def test_model_asks_for_a_warm_transfer_target_is_briefed_caller_told_why_it_failed(
        cloud, call_row, campaign):  # noqa: F811
    await sync_to_async(campaign_tools.update_actions)(campaign.pk, {"builtins": ["transfer_call", "end_call"],
                                                                     "transfer_targets": ["200"]})
    await cloud.start(flux={"utterances": [(2.5, 3.6, "I want to move Monday to Tuesday, put me through")],
                            "eot_delay_ms": 200}, llm={"reply": llm_reply, "ttft_ms": 50})
    try:
        call = TransferringCall(record_id=call_row.pk, campaign_id=campaign.pk)
        agent = VoicePipelineAgent(call)
        transfer, told = agent.tools.transfer, asyncio.Event()

        async def transfer_then_tell(*args, **kw):  # returns once the failure has been said (played)
            try:
                return await transfer(*args, **kw)
            finally:
                told.set()

        agent.tools.transfer = transfer_then_tell
        task = asyncio.create_task(agent.run(call))
        await asyncio.wait_for(told.wait(), 30)  # ~20 s of paced speech: hold, the summary, the failure
        ended_early = call.ended.is_set()
        call._end("bye")
        await asyncio.wait_for(task, 10)
    finally:
        await cloud.stop()
    assert call.asked == [("200", "warm")]
    asks = [r["json"] for r in cloud.llm.chat_requests()]
    brief_req = next(r for r in asks if r["messages"][0]["content"] == summary.PROMPT)
    assert not brief_req.get("stream")
    assert "caller: I want to move Monday to Tuesday" in brief_req["messages"][1]["content"]
    spoken = ["".join(ctx.transcripts) for ctx in cloud.tts.contexts.values()]
    assert any(SUMMARY in s and summary.OPENING in s for s in spoken), spoken  # the target's briefing
    assert call.leg is not None and call.leg.agent_audio_seconds() > 0.5  # played on the leg, not the caller
    assert any("Sorry, they hung up before I could connect you." in s for s in spoken), spoken
    assert not ended_early  # the call went on with the agent
    said = "Sorry, they hung up before I could connect you. I'm back with you. How else can I help?"
    assert agent.state.history[-1] == {"role": "assistant", "content": said}
