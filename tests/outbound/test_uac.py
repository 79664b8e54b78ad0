"""The gateway as a UAC on a fake wire: the carrier's answers are fed to the gateway's handler
with any source address, and what the gateway sends is collected (tests/sip/wire.py). RTP
sockets are real on 127.0.0.1. Each test waits on what the gateway sends, never on a sleep."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from telephony.sip.auth import parse_digest
from telephony.sip.message import SipMessage, response_to
from telephony.sip.uac import OutboundTarget, digest_authorization, outcome_for
from tests.eventually import eventually
from tests.sip.wire import Wire, make_gateway, sdp

CARRIER = ("10.9.8.7", 5060)


def target(**kw) -> OutboundTarget:
    return OutboundTarget(request_uri="sip:+15551230000@10.9.8.7:5060", dest=CARRIER, from_user="+15550001111",
                          **kw)


async def start(tmp_path, **kw):
    gw, clock = make_gateway(tmp_path)
    wire = Wire(gw, clock)
    steps: list[str] = []
    task = asyncio.create_task(gw.dial(target(**kw.pop("t", {})), on_step=steps.append, **kw))
    invite = await wire.until(lambda m: m.method == "INVITE")
    return gw, wire, task, invite, steps


def reply(wire: Wire, invite: SipMessage, status: int, *, body: bytes = b"", tag: str = "callee", src=CARRIER,
          extra=None) -> None:
    extra = list(extra or []) + [("Contact", "<sip:callee@10.9.8.7:5060>")]
    if body:
        extra.append(("Content-Type", "application/sdp"))
    wire.feed(response_to(invite, status, to_tag=tag, body=body, extra=extra).serialize(), src)


def test_outcomes_by_status():
    assert [outcome_for(s) for s in (200, 486, 600, 408, 480, 487, 603, 404, 484, 500, 403, 503)] == [
        "answered", "busy", "busy", "no_answer", "no_answer", "no_answer", "rejected", "invalid_number",
        "invalid_number", "failed", "failed", "failed"]


def test_digest_answer_matches_the_rfc_formula():
    chal = 'Digest realm="carrier", nonce="abc", qop="auth", opaque="xyz"'
    value = digest_authorization(chal, method="INVITE", uri="sip:1@h", username="u", password="p", cnonce="c")
    got = parse_digest(value)
    ha1 = hashlib.md5(b"u:carrier:p").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:1@h").hexdigest()
    assert got["response"] == hashlib.md5(f"{ha1}:abc:00000001:c:auth:{ha2}".encode()).hexdigest()
    assert got["opaque"] == "xyz" and got["qop"] == "auth"
    assert digest_authorization('Digest realm="r", nonce="n", algorithm=SHA-256', method="INVITE", uri="u",
                                username="u", password="p") is None


async def test_hostname_destination_is_refused_without_resolving(tmp_path):
    gw, clock = make_gateway(tmp_path)
    Wire(gw, clock)
    with pytest.raises(ValueError):
        await gw.dial(OutboundTarget(request_uri="sip:1@carrier.example", dest=("carrier.example", 5060)))


async def test_answered_call_is_a_normal_dialog_both_ways(tmp_path):
    gw, wire, task, invite, steps = await start(tmp_path)
    assert b"m=audio" in invite.body and b"PCMU/8000" in invite.body and b"PCMA/8000" in invite.body
    assert b"telephone-event/8000" in invite.body
    dlg = gw.dialogs[invite.call_id]
    assert dlg.role == "uac" and dlg.to_tag == invite.from_tag and gw.active_calls == 1
    reply(wire, invite, 100)
    reply(wire, invite, 180)
    reply(wire, invite, 200, body=sdp("10.9.8.7", 40002))
    result = await task
    assert result.outcome == "answered" and result.status == 200 and result.setup_ms is not None
    ack = await wire.until(lambda m: m.method == "ACK")
    assert ack.uri == "sip:callee@10.9.8.7:5060" and ack.to_tag == "callee" and ack.cseq == (1, "ACK")
    assert dlg.state == "confirmed" and dlg.call.session.verified and dlg.call.session.send_enabled
    # the 200 again (our ACK lost): the ACK again
    wire.sent.clear()
    reply(wire, invite, 200, body=sdp("10.9.8.7", 40002))
    await wire.until(lambda m: m.method == "ACK")
    # a BYE from a stranger who knows the tags is refused; the callee's BYE ends the call
    bye = (f"BYE sip:+15550001111@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.8.7:5060;branch=z9hG4bKb1\r\n"
           f"From: <sip:+15551230000@10.9.8.7>;tag=callee\r\nTo: {invite.get('from')}\r\n"
           f"Call-ID: {invite.call_id}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    wire.feed(bye, ("10.9.8.7", 5060))
    ok = await wire.until(lambda m: m.status == 200 and m.cseq[1] == "BYE")
    assert ok.call_id == invite.call_id
    await eventually(lambda: invite.call_id not in gw.dialogs)  # the end task is spawned, not awaited
    assert gw.ended == ["bye"]
    await gw.aclose()


async def test_our_bye_for_a_placed_call(tmp_path):
    gw, wire, task, invite, _ = await start(tmp_path)
    reply(wire, invite, 200, body=sdp("10.9.8.7", 40002), extra=[("Record-Route", "<sip:10.0.0.1;lr>")])
    await task
    dlg = gw.dialogs[invite.call_id]
    gw._agent_hangup(dlg, "agent")
    bye = await wire.until(lambda m: m.method == "BYE")
    assert bye.from_tag == invite.from_tag and bye.to_tag == "callee" and bye.cseq == (2, "BYE")
    assert bye.uri == "sip:callee@10.9.8.7:5060" and bye.get("route") == "<sip:10.0.0.1;lr>"
    await gw.aclose()


@pytest.mark.parametrize("status,outcome", [(486, "busy"), (603, "rejected"), (404, "invalid_number"),
                                            (480, "no_answer"), (503, "failed")])
async def test_final_failure_is_acked_and_mapped(tmp_path, status, outcome):
    gw, wire, task, invite, _ = await start(tmp_path)
    reply(wire, invite, status)
    result = await task
    assert result.outcome == outcome and result.status == status
    ack = await wire.until(lambda m: m.method == "ACK")
    assert ack.branch == invite.branch and ack.to_tag == "callee"  # same transaction as the INVITE
    assert invite.call_id not in gw.dialogs and gw.active_calls == 0 and gw.ended == [outcome]
    await gw.aclose()


async def test_407_then_answer_with_proxy_authorization(tmp_path):
    gw, wire, task, invite, _ = await start(tmp_path, t={"auth_user": "acct", "auth_password": "s3cret"})
    reply(wire, invite, 407, extra=[("Proxy-Authenticate", 'Digest realm="carrier", nonce="n1", qop="auth"')])
    second = await wire.until(lambda m: m.method == "INVITE" and m.cseq[0] == 2)
    cred = parse_digest(second.get("proxy-authorization"))
    ha1 = hashlib.md5(b"acct:carrier:s3cret").hexdigest()
    ha2 = hashlib.md5(f"INVITE:{second.uri}".encode()).hexdigest()
    assert cred["response"] == hashlib.md5(
        f"{ha1}:n1:{cred['nc']}:{cred['cnonce']}:auth:{ha2}".encode()).hexdigest()
    assert second.branch != invite.branch and second.call_id == invite.call_id and second.from_tag == invite.from_tag
    reply(wire, invite, 200, body=sdp("10.9.8.7", 40002))  # a late answer to the old transaction: ignored
    reply(wire, second, 200, body=sdp("10.9.8.7", 40002))
    assert (await task).outcome == "answered"
    await gw.aclose()


async def test_second_challenge_fails_the_call(tmp_path):
    gw, wire, task, invite, _ = await start(tmp_path, t={"auth_user": "acct", "auth_password": "bad"})
    chal = [("WWW-Authenticate", 'Digest realm="carrier", nonce="n1"')]
    reply(wire, invite, 401, extra=chal)
    second = await wire.until(lambda m: m.method == "INVITE" and m.cseq[0] == 2)
    reply(wire, second, 401, extra=chal)
    result = await task
    assert result.outcome == "failed" and result.status == 401
    await gw.aclose()


async def test_ring_timeout_sends_cancel_then_no_answer(tmp_path):
    gw, wire, task, invite, steps = await start(tmp_path, ring_timeout_s=0.2)
    reply(wire, invite, 180)
    cancel = await wire.until(lambda m: m.method == "CANCEL")
    assert cancel.branch == invite.branch and cancel.cseq == (1, "CANCEL") and not cancel.to_tag
    reply(wire, invite, 487)
    result = await task
    assert result.outcome == "no_answer" and any("CANCEL" in s for s in steps)
    await wire.until(lambda m: m.method == "ACK")
    await gw.aclose()


async def test_early_media_is_recorded_not_answered(tmp_path):
    gw, wire, task, invite, _ = await start(tmp_path)
    reply(wire, invite, 183, body=sdp("127.0.0.1", 40010))
    dlg = gw.dialogs[invite.call_id]
    await wire.until(lambda m: True)  # nothing else is sent; the session is on the clock
    session = dlg.call.session
    await eventually(lambda: dlg.media_started)
    assert not session.send_enabled and session.packets_out == 0
    reply(wire, invite, 486)
    assert (await task).outcome == "busy"
    assert session.packets_out == 0
    await gw.aclose()


async def test_responses_from_a_stranger_are_ignored(tmp_path):
    gw, wire, task, invite, _ = await start(tmp_path, ring_timeout_s=0.3)
    reply(wire, invite, 200, body=sdp("10.6.6.6", 40002), src=("10.6.6.6", 5060))
    reply(wire, invite, 486, src=("10.6.6.6", 5060))
    await wire.until(lambda m: m.method == "CANCEL")  # still ringing when the ring timeout hits
    reply(wire, invite, 487)
    assert (await task).outcome == "no_answer"  # the stranger neither answered nor ended it
    await gw.aclose()
