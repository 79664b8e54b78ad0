"""The bridge runner delivers pending webhooks: a delivery left pending by an earlier failed
attempt (or an earlier process) is retried by the running bridge's worker, signed, and marked
delivered; the worker stops with the bridge. Driven by the worker's wake/round events, no sleeps."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from campaigns import tools as campaign_tools
from campaigns.models import Campaign
from telephony.actions import signing
from telephony.bridge.runner import BridgeRunner
from telephony.models import Call, WebhookDelivery
from tests.actions.toolserver import ToolServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


def pending_delivery(url: str) -> int:
    c = Campaign.objects.create(name="Hooks", extension="300")
    campaign_tools.update_actions(c.pk, {"webhook_url": url})
    call = Call.objects.create(sip_call_id="w1", campaign=c, end_reason="bye", ended_at=timezone.now())
    row = WebhookDelivery.objects.create(
        call=call, campaign=c, event_id=str(uuid.uuid4()), url=url, payload={"event": "call.ended"},
        attempts=1, last_status=500, next_at=timezone.now() - dt.timedelta(seconds=1))  # a failed try, now due
    return row.pk


async def test_running_bridge_retries_a_pending_delivery(settings, tmp_path):
    settings.MEDIA_ROOT = settings.VAR_DIR = tmp_path
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.WEBHOOK_WORKER = True
    async with ToolServer([(200, {"ok": True})]) as srv:
        runner = BridgeRunner(port=0, agent="echo")
        await runner.start()
        try:
            worker = runner.webhooks
            await asyncio.wait_for(worker.round_done.wait(), 30)  # the round at start: nothing due yet
            worker.round_done.clear()
            pk = await sync_to_async(pending_delivery)(srv.url)
            worker.wake()

            async def retried() -> None:  # the woken round (or, at worst, a timed one) attempts it
                while not worker.attempted:
                    worker.round_done.clear()
                    await worker.round_done.wait()
            await asyncio.wait_for(retried(), 30)
        finally:
            await runner.stop()
    assert worker._task.done()  # stopped with the bridge
    row = await sync_to_async(WebhookDelivery.objects.get)(pk=pk)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 2, 200)
    [req] = srv.requests
    secret = await sync_to_async(campaign_tools.signing_secret)(row.campaign_id)
    assert signing.verify(secret, req["headers"], req["body"]) and req["headers"]["X-Talky-Delivery"] == row.event_id


async def test_worker_off_by_setting(settings, tmp_path):
    settings.MEDIA_ROOT = settings.VAR_DIR = tmp_path
    settings.WEBHOOK_WORKER = False
    runner = BridgeRunner(port=0, agent="echo")
    await runner.start()
    try:
        assert runner.webhooks is None
    finally:
        await runner.stop()
