"""Post-call webhook: persisted before sending, signed, retried with backoff after a 500 (by a
fresh delivery round, as after a restart), delivered once, offline extraction marked as skipped."""

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from campaigns import tools as campaign_tools
from campaigns.models import Campaign
from telephony.actions import signing, webhooks
from telephony.models import Call, Turn, WebhookDelivery

from .toolserver import ToolServer

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(url: str) -> int:
    c = Campaign.objects.create(name="A", extension="100")
    campaign_tools.update_actions(c.pk, {"webhook_url": url, "extraction_schema": {"confirmed": "boolean"}})
    call = Call.objects.create(sip_call_id="x", campaign=c, dialed="100", caller_uri="sip:+14155552671@h",
                               end_reason="bye", ended_at=timezone.now())
    Turn.objects.create(call=call, index=0, user_text="yes I'll come", agent_text="Great, see you Tuesday.")
    return call.pk


async def test_webhook_retried_after_500_and_delivered_once(settings):
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.GROQ_API_KEY = settings.OPENAI_API_KEY = ""  # offline: no extraction
    async with ToolServer([(500, {"error": "down"}), (200, {"ok": True})]) as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        pk = await webhooks.after_call(call_id)
        row = await sync_to_async(WebhookDelivery.objects.get)(pk=pk)
        assert row.status == "pending" and row.attempts == 0  # stored before any attempt
        now = timezone.now()
        assert await webhooks.deliver_due(now) == 1
        row = await sync_to_async(WebhookDelivery.objects.get)(pk=pk)
        assert (row.status, row.attempts, row.last_status) == ("pending", 1, 500)
        assert row.next_at == now + dt.timedelta(seconds=webhooks.BACKOFF_S)
        assert await webhooks.deliver_due(now + dt.timedelta(seconds=5)) == 0  # not due yet
        # a later round (a restarted process: nothing in memory) picks the persisted row up
        assert await webhooks.deliver_due(now + dt.timedelta(seconds=31)) == 1
        assert await webhooks.deliver_due(now + dt.timedelta(hours=2)) == 0  # never twice
    row = await sync_to_async(WebhookDelivery.objects.get)(pk=pk)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 2, 200)
    secret = await sync_to_async(campaign_tools.signing_secret)(row.campaign_id)
    assert len(srv.requests) == 2
    for r in srv.requests:
        assert signing.verify(secret, r["headers"], r["body"]) and r["headers"]["X-Talky-Delivery"] == row.event_id
    body = srv.json()
    assert body["call"]["id"] == call_id and body["outcome"] == "bye"
    assert [t["text"] for t in body["transcript"]] == ["yes I'll come", "Great, see you Tuesday."]
    assert body["extraction"] is None and body["extraction_skipped"] == webhooks.NO_LLM


async def test_webhook_gives_up_after_the_max_age(settings):
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.GROQ_API_KEY = settings.OPENAI_API_KEY = ""
    call_id = await sync_to_async(_setup)("http://127.0.0.1:9/hook")
    pk = await webhooks.after_call(call_id)
    settings.ACTIONS_ALLOWED_NETS = []  # now refused by the SSRF guard at send time: every attempt fails
    assert await webhooks.deliver_due(timezone.now() + dt.timedelta(seconds=settings.WEBHOOK_MAX_AGE_S + 1)) == 1
    row = await sync_to_async(WebhookDelivery.objects.get)(pk=pk)
    assert row.status == "failed" and "blocked" in row.last_error
