"""The dialer with a fake clock and a fake placer (no SIP, no sleeps): concurrency and per-minute
pacing, calling windows in each contact's time zone, retries by outcome, DNC, one call per
contact, two dialers never claiming the same contact; start/pause/stop and progress by API."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async

from campaigns.models import Campaign, Contact, DialerSettings, DoNotCall, Trunk
from telephony.bridge.dialer import Dialer
from telephony.bridge.outbound import TrunkFull

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]
MONDAY = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)  # 10:00 in New York (EST), 15:00 in London


class Clock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += dt.timedelta(**kw)


class Carrier:
    """A fake placer: each call waits until the test ends it with an outcome, then reports it
    the way the runner does (end hook first, then dial() returns with a Call row id)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.pending: dict[int, asyncio.Future] = {}
        self.dialer: Dialer | None = None
        self.refuse_with: Exception | None = None

    async def __call__(self, phone, campaign_id, *, contact_id, variables, ring_timeout_s):
        if self.refuse_with is not None:
            raise self.refuse_with
        self.calls.append({"phone": phone, "contact": contact_id, "variables": variables})
        fut = self.pending[contact_id] = asyncio.get_running_loop().create_future()
        outcome = await fut
        await self.dialer.finished(contact_id, outcome, 1)
        return SimpleNamespace(outcome=outcome, record_id=1)

    async def running(self) -> None:
        """Let every call task the dialer started reach the carrier (no timer: loop turns only)."""
        while any(cid not in self.pending for cid in self.dialer.calls):
            await asyncio.sleep(0)

    async def end(self, contact_id: int, outcome: str) -> None:
        await self.running()
        self.pending.pop(contact_id).set_result(outcome)
        task = self.dialer.calls.get(contact_id)
        if task is not None:
            await task

    async def end_all(self, outcome: str) -> None:
        await self.running()
        for cid in list(self.pending):
            await self.end(cid, outcome)


def make_campaign(name="Acme", ext="100", **dialer) -> Campaign:
    c = Campaign.objects.create(name=name, extension=ext)
    t = Trunk.objects.get_or_create(name="carrier", defaults={"host": "127.0.0.1", "allowed_prefixes": "+1,+44"})[0]
    defaults = {"state": "running", "trunk": t, "window_days": "0123456", "window_start": dt.time(0, 0),
                "window_end": dt.time(23, 59), "max_concurrent": 2, "calls_per_minute": 3, "max_attempts": 2,
                "retry_delays": {"busy": 600, "no_answer": 3600}}
    DialerSettings.objects.create(campaign=c, **{**defaults, **dialer})
    return c


def add(campaign, *phones, tz="America/New_York"):
    return [Contact.objects.create(campaign=campaign, phone=p, timezone=tz, name=f"n{p[-2:]}",
                                   variables={"first_name": f"F{p[-2:]}"}).pk for p in phones]


def state(pk):
    c = Contact.objects.get(pk=pk)
    return c.state, c.attempts, c.last_outcome


def live_node(name: str) -> None:
    """A bridge node with a fresh heartbeat: its claims are not released as a dead bridge's."""
    from django.utils import timezone

    from telephony.models import BridgeNode

    BridgeNode.objects.create(name=name, host="127.0.0.1", sip_port=5060, pid=1, heartbeat_at=timezone.now())


async def setup(clock, **kw):
    await sync_to_async(live_node)("test-node")
    carrier = Carrier()
    dialer = Dialer(node="test-node", place=carrier, now=clock, **kw)
    carrier.dialer = dialer
    return carrier, dialer


async def test_concurrency_and_per_minute_pacing():
    camp = await sync_to_async(make_campaign)()
    ids = await sync_to_async(add)(camp, *[f"+1201555{i:04d}" for i in range(100, 110)])
    clock = Clock(MONDAY)
    carrier, dialer = await setup(clock)
    assert len(await dialer.tick()) == 2  # max_concurrent
    assert len(await dialer.tick()) == 0
    await carrier.running()
    assert carrier.calls[0]["variables"] == {"name": "n00", "first_name": "F00"}
    await carrier.end_all("answered")
    assert len(await dialer.tick()) == 1  # 3 per minute: 2 already this minute
    await carrier.end_all("answered")
    assert len(await dialer.tick()) == 0
    clock.advance(seconds=61)
    assert len(await dialer.tick()) == 2
    await carrier.end_all("answered")
    done = [await sync_to_async(state)(i) for i in ids]
    assert sum(1 for s in done if s[0] == "done") == 5 and sum(1 for s in done if s[0] == "pending") == 5


async def test_calling_window_in_each_contacts_timezone():
    camp = await sync_to_async(make_campaign)(window_days="01234", window_start=dt.time(9, 0),
                                              window_end=dt.time(17, 0), max_concurrent=10, calls_per_minute=10)
    [ny] = await sync_to_async(add)(camp, "+12015550100", tz="America/New_York")
    [ldn] = await sync_to_async(add)(camp, "+442079460958", tz="Europe/London")
    clock = Clock(MONDAY.replace(hour=13))  # 08:00 New York, 13:00 London
    carrier, dialer = await setup(clock)
    assert [c["id"] for c in await dialer.tick()] == [ldn]
    clock.advance(hours=1)  # 09:00 New York
    assert [c["id"] for c in await dialer.tick()] == [ny]
    await carrier.end_all("busy")
    clock.t = dt.datetime(2026, 1, 10, 15, 0, tzinfo=dt.UTC) + dt.timedelta(hours=1)  # Saturday
    assert await dialer.tick() == []
    clock.t = MONDAY.replace(hour=23)  # 18:00 New York, 23:00 London: both closed
    assert await dialer.tick() == []


async def test_retries_by_outcome_then_give_up():
    camp = await sync_to_async(make_campaign)(max_concurrent=5, calls_per_minute=60)
    busy, bad, ok = await sync_to_async(add)(camp, "+12015550101", "+12015550102", "+12015550103")
    clock = Clock(MONDAY)
    carrier, dialer = await setup(clock)
    assert len(await dialer.tick()) == 3
    await carrier.end(busy, "busy")
    await carrier.end(bad, "invalid_number")
    await carrier.end(ok, "answered")
    assert await sync_to_async(state)(busy) == ("pending", 1, "busy")
    assert await sync_to_async(state)(bad) == ("failed", 1, "invalid_number")  # no retry for that outcome
    assert await sync_to_async(state)(ok) == ("done", 1, "answered")
    clock.advance(seconds=599)
    assert await dialer.tick() == []  # busy: retry after 10 minutes
    clock.advance(seconds=1)
    assert [c["id"] for c in await dialer.tick()] == [busy]
    await carrier.end(busy, "busy")
    assert await sync_to_async(state)(busy) == ("failed", 2, "busy")  # max_attempts = 2
    clock.advance(hours=1)
    assert await dialer.tick() == []


async def test_dnc_numbers_are_never_called():
    camp = await sync_to_async(make_campaign)(max_concurrent=5)
    blocked, fine = await sync_to_async(add)(camp, "+12015550104", "+12015550105")
    await sync_to_async(DoNotCall.objects.create)(phone="+12015550104")  # added behind the import's back
    carrier, dialer = await setup(Clock(MONDAY))
    assert [c["id"] for c in await dialer.tick()] == [fine]
    await carrier.running()
    assert [c["phone"] for c in carrier.calls] == ["+12015550105"]
    assert (await sync_to_async(state)(blocked))[0] == "dnc"


async def test_one_call_per_number_across_campaigns_and_dialers():
    a = await sync_to_async(make_campaign)("A", "100", max_concurrent=5)
    b = await sync_to_async(make_campaign)("B", "200", max_concurrent=5)
    await sync_to_async(add)(a, "+12015550106", "+12015550107")
    await sync_to_async(add)(b, "+12015550106")
    clock = Clock(MONDAY)
    carrier1, dialer1 = await setup(clock)
    await sync_to_async(live_node)("other-node")
    carrier2 = Carrier()
    dialer2 = Dialer(node="other-node", place=carrier2, now=clock)
    carrier2.dialer = dialer2
    first = await dialer1.tick()
    second = await dialer2.tick()
    phones = [c["phone"] for c in first + second]
    assert sorted(phones) == ["+12015550106", "+12015550107"]  # the shared number once, each contact once
    await carrier1.end_all("busy")
    await carrier2.end_all("busy")


async def test_trunk_full_gives_the_attempt_back():
    camp = await sync_to_async(make_campaign)()
    [cid] = await sync_to_async(add)(camp, "+12015550108")
    carrier, dialer = await setup(Clock(MONDAY))
    carrier.refuse_with = TrunkFull("full")
    await dialer.tick()
    await asyncio.gather(*dialer.calls.values())
    assert await sync_to_async(state)(cid) == ("pending", 0, "failed")


def test_start_pause_stop_and_progress(client, auth):
    camp = make_campaign(state="stopped")
    add(camp, "+12015550109", "+12015550110")
    for action, expect in (("start", "running"), ("pause", "paused"), ("stop", "stopped")):
        r = client.post(f"/api/v1/campaigns/{camp.pk}/{action}", data="{}", content_type="application/json",
                        **auth)
        assert r.status_code == 200 and r.json()["state"] == expect, r.content
    p = client.get(f"/api/v1/campaigns/{camp.pk}/progress", **auth).json()
    assert p["contacts"] == 2 and p["by_state"]["pending"] == 2 and p["state"] == "stopped" and p["due_now"] == 2
    no_trunk = Campaign.objects.create(name="N", extension="300")
    r = client.post(f"/api/v1/campaigns/{no_trunk.pk}/start", data="{}", content_type="application/json", **auth)
    assert r.status_code == 400 and r.json()["field"] == "trunk"
    assert client.post("/api/v1/campaigns/999/start", data="{}", content_type="application/json",
                       **auth).status_code == 404
    assert client.get(f"/api/v1/campaigns/{camp.pk}/progress").status_code == 401


def test_admin_actions(client):
    from django.contrib.auth import get_user_model

    camp = make_campaign(state="stopped")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-123456"))
    r = client.post("/admin/campaigns/campaign/", {"action": "start_dialer", "_selected_action": [camp.pk]})
    assert r.status_code == 302 and DialerSettings.objects.get(campaign=camp).state == "running"
    client.post("/admin/campaigns/campaign/", {"action": "pause_dialer", "_selected_action": [camp.pk]})
    assert DialerSettings.objects.get(campaign=camp).state == "paused"


async def test_a_dead_bridges_claims_are_released():
    camp = await sync_to_async(make_campaign)()
    [cid] = await sync_to_async(add)(camp, "+12015550111")
    await sync_to_async(Contact.objects.filter(pk=cid).update)(state="calling", claimed_by="dead-node", attempts=1)
    carrier, dialer = await setup(Clock(MONDAY))
    assert [c["id"] for c in await dialer.tick()] == [cid]  # the first tick sweeps claims of dead bridges
    await carrier.end_all("answered")
