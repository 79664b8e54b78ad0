"""The voice pipeline knows it placed the call: the personalised greeting and the prompt with the
outbound note (from the runner's context) reach the TTS and the LLM, through the real clients
against the fake providers."""

import pytest

from campaigns.outbound import call_context
from telephony.media.memcall import FakeCall
from tests.pipeline.conftest import call_row, campaign, cloud  # noqa: F401 - fixtures
from tests.pipeline.test_agent import run_call

# real-time calls (paced media, fake providers with real delays): not in the fast default
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def test_outbound_greeting_and_prompt(cloud, call_row, campaign):  # noqa: F811
    from asgiref.sync import sync_to_async

    campaign.greeting = "Hi {first_name}, this is Acme calling about your appointment."
    await sync_to_async(campaign.save)()
    ctx = await sync_to_async(call_context)(campaign.pk, {"first_name": "Ana", "name": "Ana Lopez"})
    await cloud.start(flux={"utterances": [(3.0, 3.6, "who is this")], "eot_delay_ms": 250},
                      llm={"reply": "It is Acme, about Tuesday.", "ttft_ms": 100})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        call.direction, call.context = "outbound", ctx
        await run_call(call, 6.0)
    finally:
        await cloud.stop()
    first_ctx = next(iter(cloud.tts.contexts.values()))
    assert "".join(first_ctx.transcripts).strip() == "Hi Ana, this is Acme calling about your appointment."
    system = cloud.llm.chat_requests()[0]["json"]["messages"][0]["content"]
    assert "outbound call: you placed it to Ana Lopez" in system and "receptionist" in system
