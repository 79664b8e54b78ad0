"""SIP message parsing and serialisation (RFC 3261 subset) for a UDP UAS.

Tolerant where the RFC allows (compact header names, folded lines, any header-name case, several
Vias), strict where it matters: a missing Via/Call-ID/CSeq/From/To or a bad Content-Length makes a
``SipParseError``; ``parse`` never raises anything else.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 65535
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event"}
CANONICAL = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq",
             "contact": "Contact", "content-length": "Content-Length", "content-type": "Content-Type",
             "www-authenticate": "WWW-Authenticate", "authorization": "Authorization", "expires": "Expires",
             "max-forwards": "Max-Forwards", "user-agent": "User-Agent", "allow": "Allow", "server": "Server",
             "supported": "Supported", "record-route": "Record-Route", "route": "Route"}
REQUIRED = ("via", "call-id", "cseq", "from", "to")
_REQUEST_LINE = re.compile(r"^([A-Z][A-Za-z]*) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 (\d{3}) ?(.*)$")
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 481: "Call/Transaction Does Not Exist",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
           503: "Service Unavailable"}


class SipParseError(ValueError):
    pass


@dataclass
class SipMessage:
    method: str | None = None  # requests
    uri: str | None = None
    status: int | None = None  # responses
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lowercase name, value) in order
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def set(self, name: str, value: str) -> None:
        name = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k != name] + [(name, value)]

    @property
    def call_id(self) -> str:
        return self.get("call-id", "") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        num, _, method = (self.get("cseq") or "").partition(" ")
        return int(num), method.strip()

    @property
    def top_via(self) -> str:
        return self.get("via", "") or ""

    @property
    def branch(self) -> str:
        return param(self.top_via, "branch") or ""

    def serialize(self) -> bytes:
        start = (f"{self.method} {self.uri} SIP/2.0" if self.is_request
                 else f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status or 0, '')}")
        lines = [start]
        for k, v in self.headers:
            if k != "content-length":
                lines.append(f"{CANONICAL.get(k, k.title())}: {v}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def param(header: str, name: str) -> str | None:
    """A ;name=value parameter of a header value (case-insensitive name)."""
    m = re.search(r";\s*" + re.escape(name) + r"(?:=([^;,\s]*))?", header, re.IGNORECASE)
    if not m:
        return None
    return m.group(1) if m.group(1) is not None else ""


def uri_of(header: str) -> str:
    """The URI inside a From/To/Contact value: <sip:...> or the bare form."""
    m = re.search(r"<([^>]*)>", header)
    if m:
        return m.group(1)
    return header.split(";")[0].strip()


def user_of(uri: str) -> str:
    m = re.match(r"^(?:sips?:)?([^@;:]+)@", uri.strip(), re.IGNORECASE)
    return m.group(1) if m else ""


def host_port_of(uri: str, default_port: int = 5060) -> tuple[str, int]:
    m = re.match(r"^(?:sips?:)?(?:[^@]*@)?\[?([^\];:>]+)\]?(?::(\d+))?", uri.strip(), re.IGNORECASE)
    if not m:
        raise SipParseError(f"bad URI {uri!r}")
    return m.group(1), int(m.group(2) or default_port)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def parse(data: bytes) -> SipMessage:
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    raw_lines = text.replace("\r\n", "\n").split("\n")
    start = raw_lines[0].strip()
    msg = SipMessage()
    m = _REQUEST_LINE.match(start)
    if m:
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    else:
        m = _STATUS_LINE.match(start)
        if not m:
            raise SipParseError(f"bad start line {start[:80]!r}")
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:  # folded continuation
            lines[-1] += " " + line.strip()
        elif line.strip():
            lines.append(line)
    if len(lines) > 200:
        raise SipParseError("too many headers")
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipParseError(f"bad header line {line[:80]!r}")
        key = name.strip().lower()
        key = COMPACT.get(key, key)
        value = value.strip()
        if key in ("via", "contact", "route", "record-route") and "," in value and "<" not in value[:1]:
            msg.headers.extend((key, part.strip()) for part in _split_commas(value))
        else:
            msg.headers.append((key, value))
    for req in REQUIRED:
        if msg.get(req) is None:
            raise SipParseError(f"missing {CANONICAL[req]} header")
    try:
        num, method = msg.cseq
    except ValueError:
        raise SipParseError("bad CSeq") from None
    if not method or num < 0 or num > 2**31:
        raise SipParseError("bad CSeq")
    clen = msg.get("content-length")
    if clen is not None:
        try:
            n = int(clen)
        except ValueError:
            raise SipParseError("bad Content-Length") from None
        if n < 0 or n > len(body):
            raise SipParseError("bad Content-Length")
        body = body[:n]
    msg.body = body
    return msg


def _split_commas(value: str) -> list[str]:
    parts, depth, cur, quoted = [], 0, [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted:
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (x.strip() for x in parts) if p]


def response_to(req: SipMessage, status: int, reason: str = "", *, to_tag: str | None = None,
                body: bytes = b"", extra: list[tuple[str, str]] | None = None) -> SipMessage:
    """A response copying Via(s), From, To (+tag), Call-ID and CSeq from the request (RFC 3261 8.2.6)."""
    resp = SipMessage(status=status, reason=reason or REASONS.get(status, ""))
    for k, v in req.headers:
        if k in ("via", "from", "call-id", "cseq", "record-route"):
            resp.headers.append((k, v))
        elif k == "to":
            if to_tag and param(v, "tag") is None:
                v = f"{v};tag={to_tag}"
            resp.headers.append((k, v))
    resp.headers.append(("server", "TalkyAI"))
    for k, v in extra or []:
        resp.headers.append((k.lower(), v))
    resp.body = body
    return resp


def add_received(via: str, host: str, port: int) -> str:
    """RFC 3581 / 3261 18.2.1: record where the request really came from in the top Via."""
    sent_by = via.split(";")[0].split()[-1] if via.split(";")[0].split() else ""
    via_host = sent_by.split(":")[0]
    if param(via, "rport") is not None:
        via = re.sub(r";\s*rport(=[^;]*)?", f";rport={port}", via, count=1, flags=re.IGNORECASE)
        if param(via, "received") is None:
            via += f";received={host}"
    elif via_host != host and param(via, "received") is None:
        via += f";received={host}"
    return via


def via_destination(via: str, src: tuple[str, int]) -> tuple[str, int]:
    """Where to send a response: received/rport when present (NAT), else the sent-by address."""
    rport = param(via, "rport")
    received = param(via, "received")
    sent_by = via.split(";")[0].split()[-1] if via.split(";")[0].split() else ""
    host, _, port = sent_by.partition(":")
    if rport:
        return received or src[0], int(rport)
    return received or host or src[0], int(port or 5060)
