"""Call transfer messages (RFC 3515 REFER, RFC 3420 message/sipfrag): the in-dialog REFER we send
and the reading of the NOTIFY bodies that report how the transferee's call to the target went.

Pure functions over ``SipMessage`` (no sockets, no clock, no Django) like ``uac``: the gateway's
transfer state machine (``telephony.media.transfer``) and the tests share them. The sipfrag
reader looks only at the status line and is bounded: the peer controls the body.
"""

from __future__ import annotations

from .message import SipMessage, new_branch

SIPFRAG = "message/sipfrag"
MAX_FRAG_LINE = 200


def in_dialog_request(method: str, *, uri: str, from_hdr: str, to_hdr: str, call_id: str, cseq: int,
                      routes: list[str], local: tuple[str, int], extra: list[tuple[str, str]] | None = None,
                      body: bytes = b"") -> SipMessage:
    """A request inside an established dialog (RFC 3261 12.2.1.1): the remote target as the
    Request-URI, our From (with our tag), the peer's To (with its tag), the route set, a new branch."""
    req = SipMessage(method=method, uri=uri)
    req.headers = [("via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch={new_branch()};rport"),
                   ("max-forwards", "70")]
    req.headers += [("route", r) for r in routes]
    req.headers += [("from", from_hdr), ("to", to_hdr), ("call-id", call_id), ("cseq", f"{cseq} {method}")]
    req.headers += [(k.lower(), v) for k, v in extra or []]
    req.body = body
    return req


def refer_headers(refer_to: str, *, local: tuple[str, int]) -> list[tuple[str, str]]:
    """Refer-To (where the transferee should call), Referred-By and our Contact (REFER is a target
    refresh request, RFC 3515 2.4.1). ``refer_to`` must be a sip:/sips:/tel: URI."""
    me = f"<sip:talky@{local[0]}:{local[1]}>"
    return [("Refer-To", f"<{refer_to}>"), ("Referred-By", me), ("Contact", me)]


def sipfrag_status(body: bytes) -> int | None:
    """The status code of a sipfrag body's first line ("SIP/2.0 200 OK" -> 200), None when the
    body is not a response status line (RFC 3515 2.4.5: only the status line is required)."""
    line = body[:MAX_FRAG_LINE].split(b"\n", 1)[0].strip()
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"SIP/2.0" or len(parts[1]) != 3 or not parts[1].isdigit():
        return None
    status = int(parts[1])
    return status if 100 <= status <= 699 else None


def event_package(msg: SipMessage) -> str:
    """The NOTIFY's event package, lower case without parameters ("refer;id=2" -> "refer")."""
    return (msg.get("event") or "").split(";", 1)[0].strip().lower()


def subscription_terminated(msg: SipMessage) -> bool:
    return (msg.get("subscription-state") or "").split(";", 1)[0].strip().lower() == "terminated"
