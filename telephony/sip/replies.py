"""Messages the UAS builds on its own: a 400 for a malformed request, and an in-dialog BYE."""

from __future__ import annotations

from .message import SipMessage, new_branch, param, uri_of


def bad_request(data: bytes, reason: str) -> bytes | None:
    """A 400 for a request too broken to parse, when it still names a Via to answer to."""
    if data[:4] == b"SIP/":
        return None  # a malformed response: drop silently
    head = data.split(b"\r\n\r\n")[0].decode("utf-8", "replace")
    lines = [ln for ln in head.split("\r\n")[1:] if ":" in ln]
    wanted = {"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"}
    kept = [ln for ln in lines if ln.split(":")[0].strip().lower() in wanted]
    if not any(ln.split(":")[0].strip().lower() in ("via", "v") for ln in kept):
        return None
    text = "SIP/2.0 400 Bad Request\r\n" + "\r\n".join(kept)
    text += f"\r\nWarning: 399 talky \"{reason[:100]}\"\r\nContent-Length: 0\r\n\r\n"
    return text.encode()


def bye_for(invite: SipMessage, *, to_tag: str, cseq: int, host: str, port: int) -> bytes:
    """BYE from our side of the dialog the INVITE created (we are the UAS: From/To swap)."""
    to_hdr = invite.get("to") or ""
    bye = SipMessage(method="BYE", uri=uri_of(invite.get("contact") or invite.get("from") or ""))
    bye.headers = [
        ("via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
        ("max-forwards", "70"),
        ("from", f"{to_hdr};tag={to_tag}" if param(to_hdr, "tag") is None else to_hdr),
        ("to", invite.get("from") or ""), ("call-id", invite.call_id), ("cseq", f"{cseq} BYE"),
    ]
    # UAS route set = the INVITE's Record-Route in order (RFC 3261 12.1.1): behind a proxy the BYE
    # must carry it, or the proxy cannot loose-route it to the caller
    bye.headers += [("route", rr) for rr in invite.get_all("record-route")]
    return bye.serialize()
