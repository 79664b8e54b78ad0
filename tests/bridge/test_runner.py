"""The runner as a whole: node row, start-up recovery, live accounts through SIP, status."""

import asyncio
import socket
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from telephony.bridge.runner import BridgeRunner
from telephony.models import BridgeNode, Call, SipAccount

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.VAR_DIR = tmp_path
    return tmp_path


def register(port: int, call_id: str) -> bytes:
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id};rport\r\n"
            f"From: <sip:alice@127.0.0.1>;tag=f{call_id}\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5999>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
            ).encode()


async def ask(port: int, data: bytes) -> int:
    """Send one request, return the status of the first final response."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        sock.sendto(data, ("127.0.0.1", port))
        while True:
            reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 10)
            status = int(reply.split(b" ", 2)[1])
            if status >= 200:
                return status
    finally:
        sock.close()


async def test_start_registers_a_node_and_finalises_only_dead_bridges_calls(media):
    def seed():
        old = timezone.now() - timedelta(seconds=120)
        dead = BridgeNode.objects.create(name="dead", hostname="other", host="0.0.0.0", sip_port=5060, pid=1,
                                         heartbeat_at=old)
        live = BridgeNode.objects.create(name="live", hostname="other", host="0.0.0.0", sip_port=5061, pid=1,
                                         heartbeat_at=timezone.now())
        return (Call.objects.create(sip_call_id="lost", bridge_node=dead).pk,
                Call.objects.create(sip_call_id="kept", bridge_node=live).pk)

    lost, kept = await sync_to_async(seed)()
    runner = BridgeRunner(port=0, agent="echo", advertise="192.0.2.10")
    await runner.start()
    try:
        assert runner.recovered == 1
        rows = await sync_to_async(lambda: dict(Call.objects.values_list("pk", "end_reason")))()
        assert rows == {lost: "bridge_lost", kept: ""}
        node = await sync_to_async(BridgeNode.objects.get)(pk=runner.node.id)
        assert node.sip_port == runner.gateway.port and node.stopped_at is None and node.advertised == "192.0.2.10"
        status = runner.status()
        assert status["bind"] == f"127.0.0.1:{runner.gateway.port}" and status["advertised"] == "192.0.2.10"
        assert status["node"] == node.name and status["auth"].startswith("open")
        assert await runner.node.beat()
    finally:
        await runner.stop()
    node = await sync_to_async(BridgeNode.objects.get)(pk=runner.node.id)
    assert node.stopped_at is not None  # a clean stop: nobody will treat its calls as lost


async def test_account_created_while_running_is_enforced_on_the_next_request(media):
    runner = BridgeRunner(port=0, agent="echo", accounts_poll_s=3600)  # only the save signal can apply it
    await runner.start()
    try:
        port = runner.gateway.port
        assert await ask(port, register(port, "r1")) == 200  # open mode: no account exists
        runner.accounts.changed.clear()

        def create():
            acc = SipAccount(username="alice")
            acc.set_password("s3cret")
            acc.save()

        await sync_to_async(create)()
        await asyncio.wait_for(runner.accounts.changed.wait(), 30)
        assert await ask(port, register(port, "r2")) == 401  # the very next request is challenged
        assert runner.status()["auth"].startswith("authenticated")
    finally:
        await runner.stop()


def test_bad_network_options_are_refused(settings):
    with pytest.raises(ValueError, match="IP address"):
        BridgeRunner(port=0, advertise="pbx.example.com")
    with pytest.raises(ValueError, match="--trusted"):
        BridgeRunner(port=0, trusted="10.0.0.0/8, nope")
    settings.SIP_TRUSTED_IPS = "10.0.0.0/8"
    settings.SIP_HOLD_TIMEOUT_S = 42
    runner = BridgeRunner(port=0, trusted=None)
    assert runner.policy.is_trusted("10.1.2.3") and not runner.policy.is_trusted("192.0.2.1")
    assert runner.policy.hold_timeout_s == 42 and runner.advertise is None


async def test_a_bridge_judged_dead_registers_again_so_new_calls_have_a_live_owner(media):
    from telephony import selectors, services

    runner = BridgeRunner(port=0, agent="echo")
    await runner.start()
    try:
        old = runner.node.id
        assert await runner.node.beat()
        await sync_to_async(services.stop_node)(old)  # what another bridge does to a stalled one
        assert not await runner.node.beat()
        assert runner.node.id != old
        live = await sync_to_async(lambda: list(selectors.live_nodes(15).values_list("pk", flat=True)))()
        assert live == [runner.node.id]
    finally:
        await runner.stop()
