"""A whole call: the fake LLM streams a tool call (arguments in fragments), the HTTP tool server on
127.0.0.1 gets a correctly signed request, the result goes back to the model, and the caller hears
the reply built on it; the ToolCall row is stored on the Turn."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from aioptions.fakes.openai_server import ToolCalls
from campaigns import tools as campaign_tools
from telephony.actions import signing
from telephony.media.memcall import FakeCall
from telephony.models import ToolCall, Turn
from telephony.pipeline.agent import VoicePipelineAgent
from tests.pipeline.conftest import call_row, campaign, cloud  # noqa: F401 - fixtures

from .toolserver import ToolServer

# real-time calls (paced media, fake providers with real delays): not in the fast default
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def llm_reply(messages):
    last = messages[-1]
    if last["role"] == "tool":
        return f"Done: your slot is {json.loads(last['content'])['slot']}."
    return ToolCalls(text="Let me check.", calls=[("book_slot", {"day": "tuesday"})], arg_piece=4)


async def test_tool_call_result_reaches_the_caller(cloud, call_row, campaign, settings):  # noqa: F811
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    async with ToolServer([(200, {"slot": "Tuesday at 3 pm"})]) as srv:
        await sync_to_async(campaign_tools.create_tool)(campaign.pk, {
            "name": "book_slot", "url": srv.url, "description": "book a slot",
            "parameters": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}})
        secret = await sync_to_async(campaign_tools.signing_secret)(campaign.pk)
        await cloud.start(flux={"utterances": [(2.5, 3.2, "book me tuesday")], "eot_delay_ms": 200},
                          llm={"reply": llm_reply, "ttft_ms": 50})
        try:
            call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
            agent = VoicePipelineAgent(call)
            task = asyncio.create_task(agent.run(call))
            await asyncio.sleep(7.0)
            call._end("bye")
            await asyncio.wait_for(task, 10)
        finally:
            await cloud.stop()
    assert len(srv.requests) == 1
    r = srv.requests[0]
    assert signing.verify(secret, r["headers"], r["body"]) and srv.json()["arguments"] == {"day": "tuesday"}
    first, second = cloud.llm.chat_requests()[:2]
    names = [t["function"]["name"] for t in first["json"]["tools"]]
    assert "book_slot" in names and "end_call" in names
    sent = second["json"]["messages"]
    assert sent[-2]["tool_calls"][0]["function"] == {"name": "book_slot", "arguments": '{"day": "tuesday"}'}
    assert sent[-1]["role"] == "tool" and "Tuesday at 3 pm" in sent[-1]["content"]
    turn = await sync_to_async(Turn.objects.get)(call=call_row, index=0)
    assert "Let me check." in turn.agent_text and "Done: your slot is Tuesday at 3 pm." in turn.agent_text
    spoken = "".join(t for ctx in cloud.tts.contexts.values() for t in ctx.transcripts)
    assert "Tuesday at 3 pm" in spoken  # the TTS was asked to say the result-based reply
    row = await sync_to_async(ToolCall.objects.get)(turn=turn)
    assert (row.name, row.status, row.arguments) == ("book_slot", "ok", {"day": "tuesday"})
    assert "Tuesday at 3 pm" in row.result_excerpt and row.latency_ms is not None
