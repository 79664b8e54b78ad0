"""A post-call webhook survives the death of the process that was building it, and goes once.

The delivery row is stored (``preparing``) before the wait for the Call row and the LLM extraction;
a process killed in that window (here: the after_call task cancelled mid-wait) leaves the row, and
a later worker round past the grace period completes and sends it, once. Two finishers (the live
path and a worker, or two workers) produce one pending row and one delivery; one row per call.
Time is injected (``now``), the slow steps are held on events: no sleeps, no wall-clock windows."""

import asyncio
import contextlib
import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.db import IntegrityError
from django.utils import timezone

from campaigns import tools as campaign_tools
from campaigns.models import Campaign
from telephony.actions import webhook_prepare, webhooks
from telephony.actions.admin import WebhookDeliveryAdmin
from telephony.actions.session import CallTools
from telephony.models import Call, Turn, WebhookDelivery

from .toolserver import ToolServer

pytestmark = pytest.mark.django_db(transaction=True)
LATER = dt.timedelta(seconds=webhook_prepare.PREPARE_GRACE_S + 1)


def _setup(url: str, *, ended: bool = True) -> int:
    c = Campaign.objects.create(name="A", extension="100")
    campaign_tools.update_actions(c.pk, {"webhook_url": url, "extraction_schema": {"confirmed": "boolean"}})
    call = Call.objects.create(sip_call_id="x", campaign=c, dialed="100", end_reason="bye" if ended else "",
                               ended_at=timezone.now() if ended else None)
    Turn.objects.create(call=call, index=0, user_text="yes I'll come", agent_text="Great, see you Tuesday.")
    return call.pk


def _rows() -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.order_by("pk"))


async def rows() -> list[WebhookDelivery]:
    return await sync_to_async(_rows)()


class HeldExtraction:
    """Stands in for the LLM extraction: ``entered`` is set when a finisher reaches it, and it
    returns only once ``release`` is set (never, for a process that is about to die)."""

    def __init__(self) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, call_id: int) -> dict:
        self.entered.set()
        await self.release.wait()
        return {"extraction": {"confirmed": True}}


@pytest.fixture
def offline(settings):
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]
    settings.GROQ_API_KEY = settings.OPENAI_API_KEY = ""  # offline: extraction_skipped = NO_LLM


async def test_row_is_stored_before_the_call_is_finalised_and_before_the_extraction(offline, monkeypatch):
    held = HeldExtraction()
    monkeypatch.setattr(webhook_prepare, "extract", held)
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url, ended=False)
        call_ended = asyncio.Event()
        task = asyncio.create_task(webhooks.after_call(call_id, wait_finished_s=5.0, ended=call_ended))
        for _ in range(100):  # ORM calls share one thread: the task's first write goes before one of these
            if await sync_to_async(WebhookDelivery.objects.exists)():
                break
        [row] = await rows()
        assert (row.status, row.payload, row.call_id, row.url) == ("preparing", {}, call_id, srv.url)
        # the call goes on: nobody takes it (bounded: a worker that took it would wait on the held extraction)
        assert await asyncio.wait_for(webhooks.deliver_due(timezone.now() + LATER), 10) == 0

        await sync_to_async(Call.objects.filter(pk=call_id).update)(end_reason="bye", ended_at=timezone.now())
        call_ended.set()
        await asyncio.wait_for(held.entered.wait(), 10)  # the live path is extracting
        [row] = await rows()
        assert (row.status, row.payload) == ("preparing", {})
        # a worker inside the grace period leaves the live path's row alone
        assert await asyncio.wait_for(webhooks.deliver_due(timezone.now() + dt.timedelta(seconds=30)), 10) == 0
        held.release.set()
        pk = await asyncio.wait_for(task, 10)
        [row] = await rows()
        assert row.pk == pk and row.status == "pending" and row.payload["extraction"] == {"confirmed": True}
        assert await webhooks.deliver_due() == 1
    assert len(srv.requests) == 1 and srv.json()["call"]["end_reason"] == "bye"


async def test_a_crash_mid_extraction_is_completed_by_a_later_worker_and_delivered_once(offline, monkeypatch):
    held = HeldExtraction()
    monkeypatch.setattr(webhook_prepare, "extract", held)
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        task = asyncio.create_task(webhooks.after_call(call_id, wait_finished_s=5.0))
        await asyncio.wait_for(held.entered.wait(), 10)
        task.cancel()  # the process dies: SIGKILL, crash, end of a SIGTERM drain
        with contextlib.suppress(asyncio.CancelledError):
            await task
        monkeypatch.undo()  # the next process extracts for real (offline: skipped, saying why)
        [row] = await rows()
        assert (row.status, row.payload) == ("preparing", {})

        now = timezone.now()
        assert await webhooks.deliver_due(now) == 0  # inside the grace: maybe still being built elsewhere
        assert not srv.requests and (await rows())[0].status == "preparing"
        assert await webhooks.deliver_due(now + LATER) == 1  # completed and sent in one round
        for later in (LATER * 2, dt.timedelta(hours=3), dt.timedelta(days=2)):  # more rounds, more workers
            assert await webhooks.deliver_due(now + later) == 0
    [row] = await rows()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)
    assert len(srv.requests) == 1 and srv.requests[0]["headers"]["X-Talky-Delivery"] == row.event_id
    body = srv.json()
    assert body["call"]["id"] == call_id and body["outcome"] == "bye" and body["delivery_id"] == row.event_id
    assert [t["text"] for t in body["transcript"]] == ["yes I'll come", "Great, see you Tuesday."]
    assert body["extraction"] is None and body["extraction_skipped"] == webhooks.NO_LLM


async def test_a_crash_during_a_bridged_call_waits_for_the_call_to_be_finalised(offline):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url, ended=False)
        call = type("LiveCall", (), {"call_id": "x", "campaign_id": None, "ended": asyncio.Event()})()
        task = CallTools(call).after_call(call_id)  # the agent left, the caller talks to the target
        for _ in range(100):
            if await sync_to_async(WebhookDelivery.objects.exists)():
                break
        task.cancel()  # the bridge dies during the joined call
        with contextlib.suppress(asyncio.CancelledError):
            await task
        now = timezone.now()
        assert await webhooks.deliver_due(now + LATER) == 0  # the Call row says it is going on
        # a surviving bridge finalises the dead node's call (telephony.services: bridge_lost)
        await sync_to_async(Call.objects.filter(pk=call_id).update)(end_reason="bridge_lost", ended_at=now)
        assert await webhooks.deliver_due(now + dt.timedelta(seconds=10)) == 0
        assert await webhooks.deliver_due(now + LATER) == 1
    assert len(srv.requests) == 1 and srv.json()["call"]["end_reason"] == "bridge_lost"


async def test_a_call_never_finalised_is_sent_after_the_cap(offline):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url, ended=False)
        assert await webhook_prepare.prepare(call_id) is not None  # and then the process died
        now = timezone.now()
        assert await webhooks.deliver_due(now + dt.timedelta(seconds=webhook_prepare.PREPARE_MAX_S - 60)) == 0
        assert await webhooks.deliver_due(now + dt.timedelta(seconds=webhook_prepare.PREPARE_MAX_S + 1)) == 1
    assert len(srv.requests) == 1 and srv.json()["call"]["ended_at"] is None


async def test_two_finishers_make_one_pending_row_and_one_delivery(offline):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        pk = await webhook_prepare.prepare(call_id)
        # the live path and a worker both built a payload; the conditional UPDATE lets one through
        won = await asyncio.gather(webhook_prepare.complete(pk, call_id), webhook_prepare.complete(pk, call_id))
        assert sorted(won) == [False, True]
        [row] = await rows()
        assert row.status == "pending" and row.payload["call"]["id"] == call_id
        now = timezone.now()
        assert sum(await asyncio.gather(webhooks.deliver_due(now), webhooks.deliver_due(now))) == 1
        assert await webhooks.deliver_due(now + LATER) == 0
    assert len(srv.requests) == 1


async def test_two_workers_complete_and_send_a_lost_row_once(offline):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        await webhook_prepare.prepare(call_id)  # and then the process died
        later = timezone.now() + LATER
        assert len(await sync_to_async(webhook_prepare._claim_stale)(later, 5)) == 1
        assert await sync_to_async(webhook_prepare._claim_stale)(later, 5) == []  # claimed: not twice
        # the first claimer died too: after CLAIM_STALE_S two more workers race for it
        later += dt.timedelta(seconds=webhook_prepare.CLAIM_STALE_S + 1)
        assert sum(await asyncio.gather(webhooks.deliver_due(later), webhooks.deliver_due(later))) == 1
        assert await webhooks.deliver_due(later + LATER) == 0
    [row] = await rows()
    assert row.status == "delivered" and len(srv.requests) == 1


async def test_one_row_per_call(offline, caplog):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        first = await webhooks.after_call(call_id)
        assert first is not None
        assert await webhooks.after_call(call_id) is None  # queued already: no second row
        assert not [r for r in caplog.records if r.levelname == "ERROR"]  # expected, not a failure
        await asyncio.wait_for(CallTools(type("C", (), {"call_id": "x"})()).after_call(call_id), 10)
        assert [r.pk for r in await rows()] == [first]
        assert await webhooks.deliver_due() == 1
    assert len(srv.requests) == 1
    with pytest.raises(IntegrityError):  # the database says so too
        await sync_to_async(WebhookDelivery.objects.create)(call_id=call_id, event_id="dup", url=srv.url,
                                                            next_at=timezone.now())


async def test_a_lost_row_whose_call_was_deleted_is_marked_failed(offline):
    async with ToolServer() as srv:
        call_id = await sync_to_async(_setup)(srv.url)
        await webhook_prepare.prepare(call_id)
        await sync_to_async(Call.objects.filter(pk=call_id).delete)()  # an operator's bulk delete
        assert await webhooks.deliver_due(timezone.now() + LATER) == 0
    [row] = await rows()
    assert row.status == "failed" and row.last_error == webhook_prepare.CALL_DELETED and not srv.requests


def test_admin_redeliver_leaves_preparing_rows_alone():
    c = Campaign.objects.create(name="A", extension="100")
    now = timezone.now()
    kw = {"campaign": c, "url": "https://example.com/h", "next_at": now}
    WebhookDelivery.objects.create(event_id="a", status="preparing", **kw)
    WebhookDelivery.objects.create(event_id="b", status="failed", payload={"event": "call.ended"}, **kw)
    said = []
    model_admin = WebhookDeliveryAdmin(WebhookDelivery, admin.site)
    model_admin.message_user = lambda request, msg: said.append(msg)
    model_admin.redeliver(None, WebhookDelivery.objects.all())
    assert dict(WebhookDelivery.objects.values_list("event_id", "status")) == {"a": "preparing", "b": "pending"}
    assert said == ["1 deliveries queued again; 1 still preparing (sent once their payload is built)"]
