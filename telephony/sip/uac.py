"""The client side of an INVITE (RFC 3261 17.1.1, 13.2): the messages a UAC sends and the digest
answer it computes to a 401/407, plus the mapping of a final status to a call outcome.

Pure functions over ``SipMessage``: no sockets, no clock, no Django, so the gateway's outbound leg
(``telephony.media.outbound``) and the tests share them. Nothing here resolves a host name: the
destination is always an IP address the caller resolved off the event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from .auth import parse_digest
from .message import SipMessage, new_branch, uri_of

# what a call that never reached "answered" ended as (and "answered" / "voicemail" once up)
OUTCOMES = ("answered", "busy", "no_answer", "rejected", "failed", "invalid_number", "voicemail", "refused")


@dataclass
class OutboundTarget:
    """Where and as whom to dial. ``dest`` must be an IP literal and a port (resolved beforehand)."""

    request_uri: str  # sip:+15551234567@10.0.0.5:5060
    dest: tuple[str, int]
    from_user: str = "talky"
    from_display: str = ""
    from_host: str = ""  # empty: our advertised address
    to_uri: str = ""  # empty: the Request-URI
    pai: str = ""  # P-Asserted-Identity value (trusted trunks only)
    auth_user: str = ""
    auth_password: str = ""
    extra: dict = field(default_factory=dict)  # handed to the runner's hooks (campaign, contact, ...)
    dialed: str = ""  # what the Call row shows as dialled (E.164, extension); empty: the URI's user part


def outcome_for(status: int) -> str:
    """Final response -> outcome: busy 486/600, no answer 408/480/487 (our CANCEL), rejected 603,
    invalid number 404/484, everything else (other 4xx/5xx/6xx) failed."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no_answer"
    if status == 603:
        return "rejected"
    if status in (404, 484, 604):
        return "invalid_number"
    if 200 <= status < 300:
        return "answered"
    return "failed"


def build_offer(*, local_ip: str, local_port: int, session_id: int, dtmf_pt: int = 101) -> bytes:
    """Our SDP offer: PCMU then PCMA (8 kHz, 20 ms) and telephone-event/8000."""
    lines = ["v=0", f"o=TalkyAI {session_id} 1 IN IP4 {local_ip}", "s=TalkyAI", f"c=IN IP4 {local_ip}", "t=0 0",
             f"m=audio {local_port} RTP/AVP 0 8 {dtmf_pt}", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
             f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16", "a=ptime:20", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


def _name_addr(display: str, uri: str) -> str:
    clean = display.replace('"', "").replace("\\", "")[:64]
    return f'"{clean}" <{uri}>' if clean else f"<{uri}>"


def build_invite(target: OutboundTarget, *, call_id: str, from_tag: str, cseq: int, local: tuple[str, int],
                 body: bytes, authorization: tuple[str, str] | None = None) -> SipMessage:
    """An initial INVITE; ``authorization`` = (header name, value) when answering a challenge."""
    host, port = local
    from_uri = f"sip:{target.from_user}@{target.from_host or host}"
    inv = SipMessage(method="INVITE", uri=target.request_uri)
    inv.headers = [
        ("via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
        ("max-forwards", "70"),
        ("from", f"{_name_addr(target.from_display, from_uri)};tag={from_tag}"),
        ("to", f"<{target.to_uri or target.request_uri}>"),
        ("call-id", call_id), ("cseq", f"{cseq} INVITE"),
        ("contact", f"<sip:{target.from_user}@{host}:{port}>"),
        ("allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"), ("supported", "timer"),
        ("user-agent", "TalkyAI"), ("content-type", "application/sdp"),
    ]
    if target.pai:
        inv.headers.append(("p-asserted-identity", target.pai))
    if authorization is not None:
        inv.headers.append((authorization[0].lower(), authorization[1]))
    inv.body = body
    return inv


def ack_for(invite: SipMessage, response: SipMessage, *, local: tuple[str, int]) -> SipMessage:
    """ACK of a final response. Non-2xx: same branch, part of the INVITE transaction (17.1.1.3).
    2xx: a new transaction to the remote target (Contact), through the route set (13.2.2.4)."""
    ack = SipMessage(method="ACK")
    num = invite.cseq[0]
    if response.status is not None and response.status >= 300:
        ack.uri = invite.uri
        ack.headers = [("via", invite.top_via), ("max-forwards", "70"), ("from", invite.get("from") or ""),
                       ("to", response.get("to") or ""), ("call-id", invite.call_id), ("cseq", f"{num} ACK")]
        return ack
    ack.uri = remote_target(invite, response)
    ack.headers = [("via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch={new_branch()};rport"),
                   ("max-forwards", "70")]
    ack.headers += [("route", r) for r in route_set(response)]
    ack.headers += [("from", invite.get("from") or ""), ("to", response.get("to") or ""),
                    ("call-id", invite.call_id), ("cseq", f"{num} ACK")]
    return ack


def cancel_for(invite: SipMessage) -> SipMessage:
    """CANCEL: the INVITE's Request-URI, top Via (same branch), From, To (no tag), Call-ID, CSeq number."""
    cancel = SipMessage(method="CANCEL", uri=invite.uri)
    cancel.headers = [("via", invite.top_via), ("max-forwards", "70"), ("from", invite.get("from") or ""),
                      ("to", invite.get("to") or ""), ("call-id", invite.call_id),
                      ("cseq", f"{invite.cseq[0]} CANCEL")]
    return cancel


def remote_target(invite: SipMessage, response: SipMessage) -> str:
    contact = response.get("contact")
    target = uri_of(contact) if contact else ""
    return target if target.lower().startswith(("sip:", "sips:")) else (invite.uri or "")


def route_set(response: SipMessage) -> list[str]:
    """The UAC's route set: the 2xx's Record-Route in reverse order (RFC 3261 12.1.2)."""
    return list(reversed(response.get_all("record-route")))[:8]


def bye_as_uac(*, invite: SipMessage, remote_to: str, target: str, routes: list[str], cseq: int,
               local: tuple[str, int]) -> bytes:
    bye = SipMessage(method="BYE", uri=target)
    bye.headers = [("via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch={new_branch()};rport"),
                   ("max-forwards", "70")]
    bye.headers += [("route", r) for r in routes]
    bye.headers += [("from", invite.get("from") or ""), ("to", remote_to), ("call-id", invite.call_id),
                    ("cseq", f"{cseq} BYE")]
    return bye.serialize()


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8", "surrogatepass")).hexdigest()


def digest_authorization(challenge: str, *, method: str, uri: str, username: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str | None:
    """The Authorization/Proxy-Authorization value answering a WWW-/Proxy-Authenticate challenge
    (MD5, qop=auth when offered, RFC 2069 style otherwise). None when the challenge is unusable
    (malformed, no nonce, or an algorithm other than MD5)."""
    chal = parse_digest(challenge)
    nonce, realm = chal.get("nonce"), chal.get("realm", "")
    if not nonce or chal.get("algorithm", "MD5").upper() != "MD5":
        return None
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    qops = {q.strip().lower() for q in chal.get("qop", "").split(",") if q.strip()}
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        response = _md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append("algorithm=MD5")
    if "opaque" in chal:
        parts.append(f'opaque="{chal["opaque"]}"')
    return "Digest " + ", ".join(parts)
