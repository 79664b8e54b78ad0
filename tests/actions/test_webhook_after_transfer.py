"""The post-call webhook of a transferred call: the agent stops when the bridge joins the caller to
the target, but the call goes on; the webhook must describe the call's real end. Its row is stored
at once (``preparing``), its payload built only once the call has ended and the bridge has written
the Call row (end reason "transferred"), and a row that is never finalised still gets its webhook
after the bounded wait."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from campaigns import tools as campaign_tools
from campaigns.models import Campaign
from telephony.actions import webhooks
from telephony.actions.session import CallTools
from telephony.models import Call, Turn, WebhookDelivery

from .toolserver import ToolServer

pytestmark = pytest.mark.django_db(transaction=True)


class LiveCall:
    call_id, campaign_id = "sip-1", None

    def __init__(self) -> None:
        self.ended = asyncio.Event()


def _setup(url: str) -> int:
    c = Campaign.objects.create(name="A", extension="100")
    campaign_tools.update_actions(c.pk, {"webhook_url": url})
    call = Call.objects.create(sip_call_id="sip-1", campaign=c, dialed="100")  # still going: no end yet
    Turn.objects.create(call=call, index=0, user_text="put me through", agent_text="Please hold.")
    return call.pk


def _finish(pk: int) -> None:
    Call.objects.filter(pk=pk).update(end_reason="transferred", ended_at=timezone.now())


async def test_webhook_waits_for_the_end_of_a_bridged_call(settings, monkeypatch):
    monkeypatch.setattr(webhooks, "FINALISE_WAIT_S", 0.0)  # only the call's end is waited for here
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.GROQ_API_KEY = settings.OPENAI_API_KEY = ""
    async with ToolServer([(200, {"ok": True})]) as srv:
        pk = await sync_to_async(_setup)(srv.url)
        call = LiveCall()
        task = CallTools(call).after_call(pk)  # the agent left: joined to the target
        for _ in range(10):  # ORM calls run one at a time on one thread: ten turns to get as far as it can
            await sync_to_async(Call.objects.count)()
        # stored at once (a crash now loses nothing), but not built, not due and not sent before the end
        [row] = await sync_to_async(list)(WebhookDelivery.objects.all())
        assert not task.done() and (row.status, row.payload) == ("preparing", {}) and not srv.requests
        await sync_to_async(_finish)(pk)  # the caller hung up: the bridge wrote the row ...
        call.ended.set()  # ... (in this test before the event: a long transferred call outlasts any wait)
        await asyncio.wait_for(task, 10)
    [request] = srv.requests
    assert srv.json()["call"]["end_reason"] == "transferred" and srv.json()["call"]["ended_at"], request


async def test_a_row_never_finalised_still_gets_its_webhook(settings):
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    async with ToolServer([(200, {"ok": True})]) as srv:
        pk = await sync_to_async(_setup)(srv.url)
        assert not await webhooks.wait_finished(pk, timeout_s=0.0)
        assert await webhooks.after_call(pk, wait_finished_s=0.01) is not None
        assert await webhooks.deliver_due() == 1
    assert srv.json()["call"]["end_reason"] == ""  # sent anyway, saying what it knew
