"""POST /api/v1/calls with a bridge in this process: refusals before any SIP (allowlist, DNC,
no trunk, bad input), 503 with no bridge, 202 once a routed call is on its way."""

import json

import pytest
from asgiref.sync import sync_to_async

from campaigns.models import DialerSettings, DoNotCall, Trunk
from telephony.bridge import inprocess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


def post(client, body, auth):
    return client.post("/api/v1/calls", data=json.dumps(body), content_type="application/json", **auth)


@pytest.fixture
def trunk(campaign):
    t = Trunk.objects.create(name="c", host="127.0.0.1", port=9, allowed_prefixes="+1201")
    DialerSettings.objects.create(campaign=campaign, trunk=t)
    return t


@pytest.fixture
async def bridge(close_thread_connections):
    await inprocess.start(host="127.0.0.1", port=0, agent="echo", rtp_ports=(22000, 22998))
    sent: list = []
    inprocess._runner.gateway.transport.sendto = lambda data, addr: sent.append((data, addr))
    yield sent
    await inprocess.stop()


async def test_refusals_send_nothing(async_client, auth, trunk, campaign, bridge):
    await sync_to_async(DoNotCall.objects.create)(phone="+12015550199")
    cases = [({"to": "+442079460958", "campaign": campaign.pk}, 403, "allowed destination prefixes"),
             ({"to": "+12015550199", "campaign": campaign.pk}, 403, "do-not-call"),
             ({"to": "+12015550123"}, 403, "no active trunk"),
             ({"to": "201", "campaign": campaign.pk}, 403, "not registered"),
             ({"to": "+1201555", "campaign": campaign.pk}, 403, "bad number"),
             ({"to": "", "campaign": campaign.pk}, 400, "to"),
             ({"to": "+12015550123", "campaign": "x"}, 400, "campaign"),
             ({"to": "+12015550123", "campaign": campaign.pk, "evil": 1}, 400, "evil")]
    for body, status, text in cases:
        r = await async_client.post("/api/v1/calls", data=json.dumps(body), content_type="application/json",
                                    headers={"Authorization": auth["HTTP_AUTHORIZATION"]})
        assert r.status_code == status and text in r.content.decode(), (body, r.content)
    assert bridge == []  # not one datagram left the SIP socket
    from telephony.models import Call

    assert await sync_to_async(Call.objects.count)() == 0


async def test_routed_call_is_accepted(async_client, auth, trunk, campaign, bridge):
    r = await async_client.post("/api/v1/calls", data=json.dumps({"to": "+1 201 555 0123", "campaign": campaign.pk}),
                                content_type="application/json", headers={"Authorization": auth["HTTP_AUTHORIZATION"]})
    assert r.status_code == 202 and r.json() == {"status": "dialing", "route": "trunk", "dest": "+12015550123"}


def test_no_bridge_is_503(client, auth, trunk, campaign):
    r = post(client, {"to": "+12015550123", "campaign": campaign.pk}, auth)
    assert r.status_code == 503


def test_anonymous_is_401(client):
    assert client.post("/api/v1/calls", data="{}", content_type="application/json").status_code == 401
