"""Fleet pieces without Kamailio: the trusted-proxy front door, draining, the BYE's route set,
the node row's drain flag, the status/drain API, and kamailio_db refusing SQLite."""

from __future__ import annotations

import asyncio
import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from telephony.agents.echo import EchoAgent
from telephony.bridge import fleetdb
from telephony.bridge.node import BridgeNodeLease
from telephony.media.fleet import FleetGateway
from telephony.media.gateway import GatewayHooks
from telephony.models import BridgeNode, SipAccount
from tests.fleet.rawpeer import SDP, Peer, request

RR = "<sip:127.0.0.1;lr;ftag=ft>"


def invite(call_id: str, extra: str = "") -> bytes:
    head = (f"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id};rport\r\n"
            f"Record-Route: {RR}\r\nFrom: <sip:bob@127.0.0.1>;tag=ft\r\nTo: <sip:100@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 INVITE\r\nContact: <sip:bob@127.0.0.21:5070>\r\n"
            f"Content-Type: application/sdp\r\n{extra}Content-Length: {len(SDP)}\r\n\r\n")
    return head.encode() + SDP


def options(branch: str = "z9hG4bKopt") -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={branch}\r\n"
            "From: <sip:edge@talky.invalid>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ping-" + branch +
            "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


async def fleet_gateway(proxies: str) -> FleetGateway:
    """Accounts exist (no open mode): only the proxy's word lets a call in without a challenge."""
    hooks = GatewayHooks(lookup_ha1=lambda user, realm: None, open_mode=lambda: False)
    gw = FleetGateway(proxies=proxies, host="127.0.0.1", port=0, rtp_ports=(41200, 41300),
                      agent_factory=lambda c: EchoAgent(), hooks=hooks, max_calls=5, rtp_timeout_s=30.0)
    await gw.start()
    return gw


async def test_signalling_only_from_the_proxy_which_needs_no_digest():
    gw = await fleet_gateway("127.0.0.1")
    try:
        peer = Peer(gw.port)
        peer.send(invite("p1"))
        statuses = [m.status for m in await peer.recv_all(0.6)]
        assert 100 in statuses and 200 in statuses and 401 not in statuses, statuses
    finally:
        await gw.aclose()
    other = await fleet_gateway("127.0.0.2")  # our peer (127.0.0.1) is not the proxy: silence
    try:
        peer = Peer(other.port)
        peer.send(options())
        peer.send(invite("p2"))
        assert await peer.recv_all(0.4) == []
        assert other.stats["not_from_proxy"] == 2 and other.stats["invites"] == 0
    finally:
        await other.aclose()


async def test_a_draining_bridge_answers_503_but_keeps_its_calls_and_byes_along_the_route():
    gw = await fleet_gateway("127.0.0.1")
    try:
        peer = Peer(gw.port)
        peer.send(options())
        assert [m.status for m in await peer.recv_all(0.2)] == [200]
        peer.send(invite("d1"))
        ok = next(m for m in await peer.recv_all(0.6) if m.status == 200)
        to_tag = ok.get("to").split("tag=")[1]
        assert ok.get("record-route") == RR  # copied into the answer: ACK/BYE go through the proxy
        peer.send(request("ACK", "d1", "z9hG4bKack", 2, to_tag))
        gw.drain()
        peer.send(options("z9hG4bKopt2"))
        peer.send(invite("d2"))
        refused = await peer.recv_all(0.3)
        assert [(m.status, m.cseq[1]) for m in refused] == [(503, "OPTIONS"), (503, "INVITE")]
        assert refused[1].get("retry-after") and gw.active_calls == 1 and gw.stats["drain_refused"] == 2
        closing = asyncio.get_running_loop().create_task(gw.aclose())  # the drain timeout ran out: BYE to the live call
        bye = next(m for m in await peer.recv_all(0.3) if m.method == "BYE")
        assert bye.get("route") == RR and bye.uri == "sip:bob@127.0.0.21:5070"
        await closing
    finally:
        await gw.aclose()


@pytest.mark.django_db(transaction=True)
async def test_the_node_row_publishes_load_and_passes_a_drain_request_on(close_thread_connections):
    calls = {"n": 3}
    lease = BridgeNodeLease(host="127.0.0.11", port=5080, max_calls=40, live_calls=lambda: calls["n"], beat_s=60)
    drained = []
    lease.on_drain = lambda: drained.append(True)
    await lease.start()
    try:
        assert await lease.beat()
        node = await BridgeNode.objects.aget(pk=lease.id)
        assert (node.max_calls, node.live_calls, node.draining) == (40, 3, False)
        assert (await sync_to_async(fleetdb.request_drain)(lease.id)).draining
        assert await lease.beat() and drained == [True] and lease.draining
        assert await lease.beat() and drained == [True]  # once
        state = await sync_to_async(fleetdb.fleet)()
        assert [(n["state"], n["calls"], n["max_calls"]) for n in state] == [("draining", 3, 40)]
    finally:
        await lease.stop()
    assert (await sync_to_async(fleetdb.fleet)())[0]["state"] == "stopped"


@pytest.mark.django_db
def test_status_lists_every_node_and_drain_is_staff_only(client, django_user_model):
    now = timezone.now()
    node = BridgeNode.objects.create(name="n1", host="127.0.0.11", sip_port=5080, pid=1, heartbeat_at=now,
                                     max_calls=50, live_calls=7)
    BridgeNode.objects.create(name="n0", host="127.0.0.12", sip_port=5080, pid=2,
                              heartbeat_at=now - timezone.timedelta(minutes=5))
    url = f"/api/v1/sip/nodes/{node.pk}/drain"
    assert client.post(url).status_code == 401
    django_user_model.objects.create_user("op", password="pw")
    client.login(username="op", password="pw")
    assert client.post(url).status_code == 403
    staff = django_user_model.objects.create_user("st", password="pw", is_staff=True)
    client.force_login(staff)
    client.handler.enforce_csrf_checks = False
    resp = client.post(url)
    assert resp.status_code == 202 and resp.json()["node"]["state"] == "draining"
    assert client.post("/api/v1/sip/nodes/99999999999999999999999/drain").status_code == 404
    nodes = {n["name"]: n for n in client.get("/api/v1/sip/status").json()["nodes"]}
    assert nodes["n1"]["state"] == "draining" and nodes["n1"]["calls"] == 7 and nodes["n1"]["load"] == 0.14
    assert nodes["n0"]["state"] == "dead" and nodes["n0"]["last_heartbeat"]


@pytest.mark.django_db(transaction=True)
def test_kamailio_db_is_postgresql_only_and_prints_its_sql():
    out = io.StringIO()
    call_command("kamailio_db", "--print", "--grant", "kamailio", stdout=out)
    sql = out.getvalue()
    assert "CREATE OR REPLACE VIEW kam_dispatcher" in sql and "interval '15 seconds'" in sql
    assert "GRANT SELECT ON kam_subscriber" in sql
    with pytest.raises(CommandError):
        call_command("kamailio_db", "--grant", "x; DROP TABLE y")
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="needs PostgreSQL"):
            call_command("kamailio_db")
        return
    # PostgreSQL (.ci/run's second pass): the views Kamailio reads, over live rows
    call_command("kamailio_db", stdout=io.StringIO())
    call_command("kamailio_db", stdout=io.StringIO())  # idempotent
    now = timezone.now()
    live = BridgeNode.objects.create(name="a", host="127.0.0.11", sip_port=5080, pid=1, heartbeat_at=now,
                                     max_calls=50, draining=True)
    BridgeNode.objects.create(name="b", host="0.0.0.0", advertised="192.0.2.7", sip_port=5090, pid=2,
                              heartbeat_at=now)
    BridgeNode.objects.create(name="dead", host="127.0.0.13", sip_port=5080, pid=3,
                              heartbeat_at=now - timezone.timedelta(minutes=1))
    SipAccount.objects.create(username="on", realm="talky", ha1="a" * 32)
    SipAccount.objects.create(username="off", realm="talky", ha1="b" * 32, active=False)
    with connection.cursor() as cur:
        cur.execute("SELECT destination, flags, attrs FROM kam_dispatcher ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT username, realm, ha1 FROM kam_subscriber")
        subscribers = cur.fetchall()
        cur.execute("SELECT table_version FROM version WHERE table_name = 'kam_dispatcher'")
        version = cur.fetchone()
    assert rows[0] == ("sip:127.0.0.11:5080", 9, f"duid={live.pk};maxload=50;weight=50")  # draining: inactive
    assert rows[1][:2] == ("sip:192.0.2.7:5090", 8) and len(rows) == 2  # wildcard -> advertised; dead left out
    assert subscribers == [("on", "talky", "a" * 32)] and version == (4,)
