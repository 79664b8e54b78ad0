"""Trunk registration (REGISTER client with digest, refresh before expiry), IP-authenticated
trunks (no digest, no per-source limits) and DID routing of a trunk's inbound calls."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from campaigns.models import Campaign, DialerSettings
from campaigns.selectors import campaign_for_extension
from telephony.media.registration import RegistrationTarget, TrunkRegistration
from telephony.sip.auth import parse_digest
from telephony.sip.message import response_to
from tests.sip.wire import Wire, ha1, make_gateway, request, sdp

CARRIER = ("10.9.8.7", 5060)


class Sleeps:
    """An injected sleep: records the wait and returns at once, until told to block."""

    def __init__(self, block_after: int) -> None:
        self.waits: list[float] = []
        self.block_after = block_after
        self.blocked = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.block_after:
            self.blocked.set()
            await asyncio.Event().wait()


async def test_register_with_digest_then_refresh_before_expiry(tmp_path):
    gw, clock = make_gateway(tmp_path)
    wire = Wire(gw, clock)
    statuses: list[tuple] = []
    sleeps = Sleeps(block_after=2)
    reg = TrunkRegistration(gw, RegistrationTarget(CARRIER, "carrier.example", "acct", "pw", expires=120),
                            lambda *a: statuses.append(a), sleep=sleeps)
    reg.start()
    for round_ in range(2):
        first = await wire.until(lambda m: m.method == "REGISTER" and "authorization" not in dict(m.headers))
        wire.sent.clear()
        wire.feed(response_to(first, 401, to_tag="r", extra=[
            ("WWW-Authenticate", f'Digest realm="carrier", nonce="n{round_}", qop="auth"')]).serialize(), CARRIER)
        second = await wire.until(lambda m: m.method == "REGISTER")
        cred = parse_digest(second.get("authorization"))
        h2 = hashlib.md5(b"REGISTER:sip:carrier.example").hexdigest()
        assert cred["response"] == hashlib.md5(
            f"{ha1('acct', 'pw', 'carrier')}:n{round_}:{cred['nc']}:{cred['cnonce']}:auth:{h2}".encode()).hexdigest()
        assert second.call_id == first.call_id and second.cseq[0] == first.cseq[0] + 1
        wire.sent.clear()
        wire.feed(response_to(second, 200, to_tag="r", extra=[
            ("Contact", f"<sip:acct@127.0.0.1:5060>;expires={60 + round_}")]).serialize(), CARRIER)
    await asyncio.wait_for(sleeps.blocked.wait(), 10)
    assert statuses == [("registered", "", 60), ("registered", "", 61)]
    assert sleeps.waits == pytest.approx([48.0, 48.8])  # 80 % of what the carrier granted: before expiry
    await reg.stop()
    assert (await wire.until(lambda m: m.method == "REGISTER")).get("expires") == "0"
    await gw.aclose()


async def test_registration_failure_is_reported(tmp_path):
    gw, clock = make_gateway(tmp_path)
    wire = Wire(gw, clock)
    statuses: list[tuple] = []
    sleeps = Sleeps(block_after=1)
    reg = TrunkRegistration(gw, RegistrationTarget(CARRIER, "carrier.example", "acct", "pw"),
                            lambda *a: statuses.append(a), sleep=sleeps)
    reg.start()
    first = await wire.until(lambda m: m.method == "REGISTER")
    wire.feed(response_to(first, 403, to_tag="r").serialize(), ("10.6.6.6", 5060))  # a stranger: ignored
    wire.feed(response_to(first, 403, to_tag="r").serialize(), CARRIER)
    await asyncio.wait_for(sleeps.blocked.wait(), 10)
    assert statuses == [("failed", "403 Forbidden", None)]
    await reg.stop()
    await gw.aclose()


async def test_ip_authenticated_trunk_needs_no_digest_and_skips_source_limits(tmp_path):
    gw, clock = make_gateway(tmp_path, accounts={"alice": ha1("alice", "pw")})
    wire = Wire(gw, clock)
    gw.trunk_ips = frozenset({"10.9.8.7"})
    for i in range(12):  # more than the per-source INVITE burst and call cap
        await wire.call(f"trunk-{i}", src=CARRIER, body=sdp("10.9.8.7"))
    assert gw.active_calls == 12
    wire.take()
    wire.feed(request("INVITE", "stranger", body=sdp("10.6.6.6"), src="10.6.6.6:5060"), ("10.6.6.6", 5060))
    assert 401 in wire.statuses()  # everyone else still authenticates
    await gw.aclose()


@pytest.mark.django_db
def test_inbound_did_picks_the_campaign():
    default = Campaign.objects.create(name="Default", extension="100", is_default=True)
    sales = Campaign.objects.create(name="Sales", extension="200")
    DialerSettings.objects.create(campaign=sales, did="+15557654321")
    assert campaign_for_extension("+15557654321") == sales
    assert campaign_for_extension("15557654321") == sales
    assert campaign_for_extension("200") == sales
    assert campaign_for_extension("+15550000000") == default
