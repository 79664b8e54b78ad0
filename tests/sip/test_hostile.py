"""Regression tests for the bridge on a hostile network (issue 11): each defect found on the old
main has a test here that failed there. The gateway sits on a fake wire (tests/sip/wire.py) so
sources can be any address and time is a FakeClock; RTP sockets are real on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import pytest

from telephony.agents.echo import EchoAgent
from telephony.media.contract import DtmfEvent
from telephony.media.gateway import SIPMediaGateway
from telephony.rtp.packet import build_rtp
from telephony.sip.message import parse
from telephony.sip.policy import SipPolicy

from .wire import Wire, digest, ha1, make_gateway, request, sdp

PHONE = ("127.0.0.1", 5999)


async def ticks(gw: SIPMediaGateway, n: int) -> None:
    """Wait until the shared media clock has ticked n more times."""
    done, count = asyncio.Event(), [0]

    def cb(now: float, i: int) -> None:
        count[0] += 1
        if count[0] >= n:
            done.set()

    gw.clock.add(cb)
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        gw.clock.remove(cb)


async def settle(gw: SIPMediaGateway) -> None:
    if gw._ending:
        await asyncio.gather(*list(gw._ending))


@pytest.fixture
async def wire():
    gw, clock = make_gateway()
    w = Wire(gw, clock)
    yield w
    await gw.aclose()


@pytest.fixture
async def secured():
    gw, clock = make_gateway(accounts={"alice": ha1("alice", "s3cret")})
    w = Wire(gw, clock)
    yield w
    await gw.aclose()


# --- 1. one datagram never kills the listener ---------------------------------------------------
async def test_bad_numbers_get_400_and_the_real_listener_keeps_answering():
    gw = SIPMediaGateway(host="127.0.0.1", port=0, agent_factory=lambda c: EchoAgent(), rtp_ports=(42000, 42100))
    await gw.start()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    loop = asyncio.get_running_loop()

    async def recv() -> bytes:
        return await asyncio.wait_for(loop.sock_recv(peer, 65535), 5)

    try:
        for via in ("127.0.0.1:99999;branch=z9hG4bK1;rport", "127.0.0.1:-1;branch=z9hG4bK2;rport",
                    "127.0.0.1:5999;branch=z9hG4bK3;rport=99999", "127.0.0.1;branch=z9hG4bK4;received=::x;rport"):
            raw = request("OPTIONS", "c-bad", src="h").replace(b"h;branch=z9hG4bKx;rport", via.encode())
            peer.sendto(raw, ("127.0.0.1", gw.port))
            reply = await recv()  # a 400 (it mirrors the bad Via), or 200 where the bad part was ours to overwrite
            assert reply.startswith((b"SIP/2.0 400 ", b"SIP/2.0 200 ")), reply[:40]
        peer.sendto(request("OPTIONS", "c-ok", src="127.0.0.1:1"), ("127.0.0.1", gw.port))
        assert parse(await recv()).status == 200
        assert gw.listening and gw.transport.handler_errors == 0 and gw.stats["bad_messages"] == 3
    finally:
        peer.close()
        await gw.aclose()


async def test_a_listener_that_fails_says_so():
    gw = SIPMediaGateway(host="127.0.0.1", port=0, agent_factory=lambda c: EchoAgent(), rtp_ports=(42000, 42100))
    await gw.start()
    real = gw.transport.sock

    class Broken:
        def fileno(self):
            return real.fileno()

        def recvmsg(self, *a):
            raise OSError(errno.EBADF, "Bad file descriptor")

        def close(self):
            real.close()

    gw.transport.sock = Broken()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"OPTIONS", ("127.0.0.1", gw.port))
        await asyncio.wait_for(gw.failed.wait(), 5)
    assert not gw.listening
    await gw.aclose()


# --- 2. no DNS on the loop ------------------------------------------------------------------------
async def test_hostnames_in_via_and_sdp_are_never_resolved(wire, monkeypatch):
    def no_dns(*a, **k):
        raise AssertionError("DNS lookup on the event loop")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    body = sdp().replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 phone.example.invalid")
    wire.feed(request("INVITE", "dns1", body=body, src="pc.example.invalid:5070"), PHONE)
    ok = await wire.until(lambda m: m.status == 200)
    assert {addr for _, addr in wire.sent} == {PHONE}  # every reply went to the packet's source
    session = wire.gw.dialogs["dns1"].call.session
    assert session.remote is None  # no address to send to until the caller's RTP latches
    assert "received=127.0.0.1" in ok.top_via and "rport=5999" in ok.top_via


# --- 3. bounded state -------------------------------------------------------------------------------
async def test_tables_stay_bounded_under_a_stream_of_distinct_transactions_and_registrations():
    """(tests/sip/test_registrar.py drives 30,000 REGISTERs through the registrar alone.)"""
    gw, clock = make_gateway(policy=SipPolicy(max_bindings_total=2000))
    gw.responses.max_entries = 1000
    wire = Wire(gw, clock)
    for i in range(5000):
        src = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 5060 + i % 1000)
        wire.feed(request("OPTIONS", f"opt-{i}", branch=f"z9hG4bKo{i}", src=f"{src[0]}:{src[1]}"), src)
        wire.sent.clear()
    for i in range(10000):
        src = (f"172.{16 + (i >> 16) % 16}.{(i >> 8) & 255}.{i & 255}", 1024 + i)
        raw = request("REGISTER", f"reg-{i}", branch=f"z9hG4bKr{i}", uri="sip:127.0.0.1", user=f"u{i}",
                      src=f"{src[0]}:{src[1]}", extra="Expires: 60\r\n").replace(
            b"To: <sip:127.0.0.1>", f"To: <sip:u{i}@127.0.0.1>".encode())
        wire.feed(raw, src)
        wire.sent.clear()
        if i % 2500 == 2499:
            wire.clock.advance(61)  # older registrations expire
            gw.housekeeping()
    assert len(gw.responses) <= 1000 and gw.responses.bytes <= gw.responses.max_bytes
    assert len(gw.registrar) <= 2000 and gw.registrar.sizes()["heap"] <= 2 * 2000 + 1024
    assert gw.stats["registers"] == 10000
    assert gw.pike.tracked() <= 2 * gw.policy.max_tracked_sources
    wire.clock.advance(61)
    gw.housekeeping()
    assert len(gw.responses) == 0 and len(gw.registrar) == 0
    await gw.aclose()


# --- 4. no reflection ------------------------------------------------------------------------------
async def test_no_media_to_a_third_party_before_the_caller_confirms(wire):
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind(("127.0.0.5", 0))
    victim.setblocking(False)
    vport = victim.getsockname()[1]
    await wire.call("refl", body=sdp("127.0.0.5", vport), ack=False)
    session = wire.gw.dialogs["refl"].call.session
    await ticks(wire.gw, 10)
    assert session.packets_out == 0
    with pytest.raises(BlockingIOError):
        victim.recv(2000)
    assert {addr for _, addr in wire.sent} == {PHONE}
    ok = next(m for m, _ in wire.take() if m.status == 200)
    wire.feed(request("ACK", "refl", branch="z9hG4bKa", to_tag=ok.to_tag), PHONE)  # confirmed: now it may flow
    await ticks(wire.gw, 5)
    assert session.packets_out > 0
    victim.close()


# --- 5. RTP source checks -----------------------------------------------------------------------------
async def test_rtp_from_strangers_is_dropped_and_cannot_hijack_the_call(wire):
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.9", 0))
    await wire.call("spray", body=sdp("127.0.0.1", 40000))  # SDP names a port the phone does not use (NAT)
    session = wire.gw.dialogs["spray"].call.session
    dest = ("127.0.0.1", session.local_port)
    for i in range(20):
        attacker.sendto(build_rtp(0, i, i * 160, 666, False, b"\xaa" * 160), dest)
    await ticks(wire.gw, 3)
    assert not session.latched and session.ignored == 20 and session.packets_in == 0
    for i in range(3):
        phone.sendto(build_rtp(0, i, i * 160, 42, False, b"\x11" * 160), dest)  # the caller's NAT'd port
    await ticks(wire.gw, 3)
    assert session.latched and session.remote == phone.getsockname() and session.packets_in == 3
    attacker.sendto(build_rtp(0, 9, 9 * 160, 42, False, b"\xaa" * 160), dest)
    await ticks(wire.gw, 3)
    assert session.remote == phone.getsockname() and session.ignored == 21
    phone.close()
    attacker.close()


# --- 6. hold and session timers ---------------------------------------------------------------------------
async def test_a_held_call_gets_the_hold_timeout_not_forever(wire):
    gw = wire.gw
    ok = await wire.call("held")
    await wire.call("live", src=("127.0.0.1", 5998))
    wire.feed(request("INVITE", "held", branch="z9hG4bKh", cseq=2, to_tag=ok.to_tag,
                      body=sdp(direction="inactive")), PHONE)
    wire.clock.advance(gw.rtp_timeout_s + 1)
    gw.housekeeping()
    await settle(gw)
    assert gw.ended == ["rtp_timeout"] and "held" in gw.dialogs  # the live call idled out; hold is not idle
    wire.clock.advance(gw.hold_timeout_s)
    gw.housekeeping()
    await settle(gw)
    assert gw.ended == ["rtp_timeout", "hold_timeout"] and gw.active_calls == 0
    assert any(m.method == "BYE" and m.call_id == "held" for m, _ in wire.take())


async def test_session_timer_is_honoured_refreshed_and_enforced(wire):
    gw = wire.gw
    wire.feed(request("INVITE", "short", branch="z9hG4bKs", body=sdp(),
                      extra="Session-Expires: 30\r\nSupported: timer\r\n"), PHONE)
    assert [(m.status, m.get("min-se")) for m, _ in wire.take()] == [(422, "90")]
    ok = await wire.call("st", extra="Session-Expires: 120;refresher=uac\r\nSupported: timer\r\n")
    assert ok.get("session-expires") == "120;refresher=uac" and ok.get("require") == "timer"
    gw.dialogs["st"].call.session.last_rx_at = wire.clock.t + 1e6  # media is flowing throughout
    wire.clock.advance(70)
    wire.feed(request("UPDATE", "st", branch="z9hG4bKu", cseq=2, to_tag=ok.to_tag,
                      extra="Session-Expires: 120\r\nSupported: timer\r\n"), PHONE)
    assert next(m for m, _ in wire.take() if m.cseq[1] == "UPDATE").status == 200
    wire.clock.advance(80)  # 150 s after the call began, 80 s after the refresh: still fine
    gw.housekeeping()
    assert gw.active_calls == 1
    wire.clock.advance(10)  # 120 - min(32, 40) = 88 s after the refresh
    gw.housekeeping()
    await settle(gw)
    assert gw.ended == ["session_expired"]


# --- 7. abuse limits ---------------------------------------------------------------------------------
async def test_an_invite_flood_from_one_address_leaves_room_for_everyone_else():
    gw, clock = make_gateway(max_calls=12)
    wire = Wire(gw, clock)
    attacker = ("127.0.0.2", 5060)
    for i in range(40):
        wire.feed(request("INVITE", f"flood-{i}", branch=f"z9hG4bKf{i}", body=sdp("127.0.0.2"),
                          src="127.0.0.2:5060"), attacker)
    assert gw.stats["rate_limited"] == 30 and len(gw.dialogs) == 10
    ok = await wire.call("legit", src=("127.0.0.3", 5060))
    assert ok.status == 200
    await gw.aclose()


async def test_per_source_concurrent_calls_are_capped():
    gw, clock = make_gateway(policy=SipPolicy(invite_burst=50, max_calls_per_source=3))
    wire = Wire(gw, clock)
    for i in range(4):
        wire.feed(request("INVITE", f"cap-{i}", branch=f"z9hG4bKc{i}", body=sdp()), PHONE)
    assert len(gw.dialogs) == 3
    assert next(m for m, _ in wire.take() if m.call_id == "cap-3").status == 486
    await gw.aclose()


async def test_scanners_get_silence(wire):
    wire.feed(request("OPTIONS", "scan", extra="User-Agent: friendly-scanner\r\n"), PHONE)
    wire.feed(request("OPTIONS", "scan2", extra="User-Agent: sipvicious 0.3\r\n"), PHONE)
    assert wire.sent == [] and wire.gw.stats["scanners_dropped"] == 2


async def test_a_source_over_its_request_budget_is_ignored_for_a_while():
    gw, clock = make_gateway(policy=SipPolicy(request_rate=10, request_burst=20, block_s=60))
    wire = Wire(gw, clock)
    src = ("192.0.2.50", 5060)
    for i in range(100):
        wire.feed(request("OPTIONS", f"p{i}", branch=f"z9hG4bKp{i}", src="192.0.2.50:5060"), src)
    assert len(wire.take()) == 20 and gw.stats["flood_dropped"] == 80
    clock.advance(61)
    wire.feed(request("OPTIONS", "after", branch="z9hG4bKafter", src="192.0.2.50:5060"), src)
    assert wire.statuses() == [200]
    await gw.aclose()


# --- 7/8. authentication -----------------------------------------------------------------------------
def register(wire: Wire, n: int, *, user: str = "alice", password: str | None = None, src=PHONE,
             auth: str | None = None, aor_user: str | None = None) -> list:
    host = f"{src[0]}:{src[1]}"
    raw = request("REGISTER", f"r{n}", branch=f"z9hG4bKr{n}", cseq=n, uri="sip:127.0.0.1", user=user, src=host,
                  extra=auth or "").replace(b"To: <sip:127.0.0.1>", f"To: <sip:{aor_user or user}@127.0.0.1>".encode())
    wire.feed(raw, src)
    return [m for m, _ in wire.take()]


def challenge(wire: Wire, n: int, src=PHONE) -> str:
    return register(wire, n, src=src)[0].get("www-authenticate")


async def test_digest_works_once_and_a_replay_is_refused(secured):
    chal = challenge(secured, 1)
    auth = digest(chal, user="alice", password="s3cret", method="REGISTER", uri="sip:127.0.0.1")
    assert [m.status for m in register(secured, 2, auth=auth)] == [200]
    replay = register(secured, 3, auth=auth)
    assert replay[0].status == 401 and "stale=true" in replay[0].get("www-authenticate").lower()


async def test_unknown_user_and_wrong_password_look_the_same_and_lead_to_lockout(secured, caplog):
    caplog.set_level(logging.WARNING, logger="telephony.bridge")
    answers = []
    for n, user in enumerate(["mallory", "alice", "alice", "alice", "alice"]):
        chal = challenge(secured, 10 + 2 * n)
        auth = digest(chal, user=user, password="guess", method="REGISTER", uri="sip:127.0.0.1")
        (reply,) = register(secured, 11 + 2 * n, user=user, auth=auth)
        answers.append((reply.status, sorted(k for k, _ in reply.headers), "stale" in reply.get("www-authenticate")))
    assert answers[0] == answers[1] and answers[0][0] == 401
    chal = challenge(secured, 30)
    assert chal is None  # locked: 403 already, even before a password is tried
    auth = digest(challenge(secured, 31, src=("127.0.0.4", 5060)), user="alice", password="s3cret",
                  method="REGISTER", uri="sip:127.0.0.1")
    assert [m.status for m in register(secured, 32, auth=auth, src=("127.0.0.1", 6000))] == [403]
    assert len([r for r in caplog.records if "lockout" in r.getMessage()]) == 1


async def test_credentials_only_register_their_own_address(secured):
    auth = digest(challenge(secured, 1), user="alice", password="s3cret", method="REGISTER", uri="sip:127.0.0.1")
    assert [m.status for m in register(secured, 2, auth=auth, aor_user="bob")] == [403]
    assert len(secured.gw.registrar) == 0


# --- 9. dialogs matched by Call-ID and both tags -------------------------------------------------------
async def test_in_dialog_requests_need_the_right_tags_order_and_peer(secured):
    gw = secured.gw
    chal = None
    secured.feed(request("INVITE", "d1", branch="z9hG4bKd1", body=sdp(), user="alice"), PHONE)
    chal = secured.take()[0][0].get("www-authenticate")
    auth = digest(chal, user="alice", password="s3cret", method="INVITE", uri="sip:100@127.0.0.1")
    secured.feed(request("INVITE", "d1", branch="z9hG4bKd1b", cseq=2, body=sdp(), user="alice", extra=auth), PHONE)
    ok = await secured.until(lambda m: m.status == 200)
    secured.feed(request("ACK", "d1", branch="z9hG4bKack", cseq=2, to_tag=ok.to_tag), PHONE)
    secured.take()
    secured.feed(request("BYE", "d1", branch="z9hG4bKb1", cseq=3, to_tag="guessed"), PHONE)
    secured.feed(request("BYE", "d1", branch="z9hG4bKb2", cseq=3, from_tag="other", to_tag=ok.to_tag), PHONE)
    assert secured.statuses() == [481, 481]
    stranger = ("127.0.0.66", 5060)
    secured.feed(request("BYE", "d1", branch="z9hG4bKb3", cseq=4, to_tag=ok.to_tag, src="127.0.0.66:5060"), stranger)
    assert secured.statuses() == [401]
    secured.feed(request("BYE", "d1", branch="z9hG4bKb4", cseq=1, to_tag=ok.to_tag), PHONE)
    assert secured.statuses() == [500]  # an old CSeq: a replay
    assert gw.active_calls == 1
    secured.feed(request("BYE", "d1", branch="z9hG4bKb5", cseq=5, to_tag=ok.to_tag), PHONE)
    assert secured.statuses() == [200]
    await settle(gw)
    assert gw.ended == ["bye"]


async def test_a_duplicated_call_id_never_makes_a_second_dialog(wire):
    wire.feed(request("INVITE", "dup", branch="z9hG4bKone", from_tag="a", body=sdp()), PHONE)
    wire.feed(request("INVITE", "dup", branch="z9hG4bKtwo", from_tag="b", body=sdp()), PHONE)
    await wire.until(lambda m: m.status == 200)
    assert 482 in [m.status for m, _ in wire.take()] and len(wire.gw.dialogs) == 1
    await wire.gw.aclose()
    assert wire.gw.ended == ["shutdown"]


# --- 10. the advertised address ----------------------------------------------------------------------------
@pytest.mark.parametrize("advertise,expected", [(None, "10.1.2.3"), ("203.0.113.5", "203.0.113.5")])
async def test_a_wildcard_bridge_advertises_where_the_phone_reached_it(advertise, expected):
    gw, clock = make_gateway(host="0.0.0.0", advertise=advertise)
    wire = Wire(gw, clock)
    ok = await wire.call("adv", src=("10.1.2.99", 5060), body=sdp("10.1.2.99"), local_ip="10.1.2.3")
    assert f"c=IN IP4 {expected}".encode() in ok.body and f"IN IP4 {expected}".encode() in ok.body.split(b"\r\n")[1]
    assert ok.get("contact") == f"<sip:talky@{expected}:5060>"
    assert b"127.0.0.1" not in ok.body
    await gw.aclose()


# --- 13. small protocol gaps ---------------------------------------------------------------------------------
async def test_sip_info_dtmf_reaches_the_agent(wire):
    ok = await wire.call("info")
    call = wire.gw.dialogs["info"].call
    for cseq, (ctype, body) in enumerate([("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
                                          ("application/dtmf", b"#"), ("text/plain", b"hi")], start=2):
        wire.feed(request("INFO", "info", branch=f"z9hG4bKi{cseq}", cseq=cseq, to_tag=ok.to_tag, body=body,
                          ctype=ctype), PHONE)
    assert wire.statuses()[-3:] == [200, 200, 415]
    digits = [call._events.get_nowait(), call._events.get_nowait()]
    assert [d.digit for d in digits] == ["5", "#"] and all(isinstance(d, DtmfEvent) for d in digits)


async def test_sdp_version_goes_up_only_when_our_sdp_changes(wire):
    ok = await wire.call("ver")

    def version(msg) -> int:
        return int(msg.body.split(b"\r\n")[1].split()[2])

    versions = [version(ok)]
    for cseq, direction in enumerate(["sendonly", "sendonly", "sendrecv"], start=2):
        wire.take()
        wire.feed(request("INVITE", "ver", branch=f"z9hG4bKv{cseq}", cseq=cseq, to_tag=ok.to_tag,
                          body=sdp(direction=direction)), PHONE)
        versions.append(version(next(m for m, _ in wire.take() if m.status == 200)))
    assert versions == [1, 2, 2, 3]


async def test_a_caller_in_a_call_is_exempt_only_for_that_calls_requests():
    gw, clock = make_gateway(policy=SipPolicy(request_rate=10, request_burst=20, block_s=60))
    wire = Wire(gw, clock)
    ok = await wire.call("mine")
    wire.take()
    for i in range(30):  # in-dialog requests of its own call: never budgeted
        wire.feed(request("INFO", "mine", branch=f"z9hG4bKin{i}", cseq=10 + i, to_tag=ok.to_tag), PHONE)
    assert wire.statuses() == [200] * 30
    for i in range(40):  # anything else from the same address is
        wire.feed(request("OPTIONS", f"o{i}", branch=f"z9hG4bKop{i}"), PHONE)
    assert len(wire.take()) < 40 and gw.stats["flood_dropped"] > 0
    await gw.aclose()
