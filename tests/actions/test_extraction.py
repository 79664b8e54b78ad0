"""Post-call extraction through the real Groq SDK against the fake Groq server: one JSON-mode
request carrying the campaign's fields and the transcript; the webhook body carries what came
back (only the declared fields); a failing LLM still sends the webhook, saying why it has no
extraction. The no-key case is in test_webhooks.py (``extraction_skipped`` = NO_LLM)."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from aioptions.fakes.openai_server import FakeOpenAIServer
from campaigns import tools as campaign_tools
from campaigns.models import Campaign
from telephony.actions import webhooks
from telephony.models import Call, Turn

from .toolserver import ToolServer

pytestmark = pytest.mark.django_db(transaction=True)
FIELDS = {"appointment_confirmed": "boolean", "new_time": "string"}


def _setup(url: str) -> int:
    c = Campaign.objects.create(name="A", extension="100")
    campaign_tools.update_actions(c.pk, {"webhook_url": url, "extraction_schema": FIELDS})
    call = Call.objects.create(sip_call_id="x", campaign=c, dialed="100", end_reason="bye", ended_at=timezone.now())
    Turn.objects.create(call=call, index=0, user_text="Yes, but can we make it Tuesday at 3?",
                        agent_text="Done, Tuesday at 3 pm.")
    return call.pk


async def _deliver(settings, llm: FakeOpenAIServer) -> tuple[dict, list[dict]]:
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.GROQ_API_KEY, settings.GROQ_BASE_URL, settings.OPENAI_API_KEY = "gq", llm.groq_base_url, ""
    async with ToolServer([(200, {"ok": True})]) as hook:
        call_id = await sync_to_async(_setup)(hook.url)
        assert await webhooks.after_call(call_id) is not None
        assert await webhooks.deliver_due() == 1
    return hook.json(), llm.chat_requests()


async def test_webhook_carries_the_llm_extraction(settings):
    reply = json.dumps({"appointment_confirmed": True, "new_time": "Tuesday 15:00", "mood": "chatty"})
    async with FakeOpenAIServer(reply=reply, ttft_ms=0) as llm:
        body, [req] = await _deliver(settings, llm)
    assert body["extraction"] == {"appointment_confirmed": True, "new_time": "Tuesday 15:00"}  # declared only
    assert "extraction_skipped" not in body
    sent = req["json"]
    assert sent["response_format"] == {"type": "json_object"} and not sent.get("stream")
    assert "new_time" in sent["messages"][0]["content"]
    assert "caller: Yes, but can we make it Tuesday at 3?" in sent["messages"][1]["content"]


async def test_llm_failure_still_sends_the_webhook_saying_why(settings):
    async with FakeOpenAIServer(fail=500) as llm:
        body, reqs = await _deliver(settings, llm)
    assert reqs and body["extraction"] is None and body["extraction_skipped"].startswith("extraction failed")
    assert body["transcript"][0]["text"] == "Yes, but can we make it Tuesday at 3?"
