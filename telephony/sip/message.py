"""SIP message parsing and serialisation (RFC 3261 subset) for a UDP UAS facing the Internet.

Tolerant where the RFC allows (compact header names, folded lines, any header-name case, several
Vias), strict where it matters. Every step is linear in the input — plain ``str`` splitting and
single-character-class scans, no backtracking regex on attacker text — and bounded: message size,
start-line length, header count and header length are capped, and every number is range-checked
(CSeq, Content-Length, Expires, Max-Forwards, Via ports). ``parse`` raises ``SipParseError`` for
anything it will not accept and never anything else.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 16384  # a UDP SIP message larger than this is not a phone's (RFC 3261 18.1.1: MTU-bound)
MAX_START_LINE = 1024
MAX_HEADER = 2048  # one header line after unfolding
MAX_HEADERS = 64
MAX_CALL_ID = 256
CSEQ_MAX = 2**31 - 1
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
           "x": "session-expires"}
CANONICAL = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq",
             "contact": "Contact", "content-length": "Content-Length", "content-type": "Content-Type",
             "www-authenticate": "WWW-Authenticate", "authorization": "Authorization", "expires": "Expires",
             "max-forwards": "Max-Forwards", "user-agent": "User-Agent", "allow": "Allow", "server": "Server",
             "supported": "Supported", "record-route": "Record-Route", "route": "Route",
             "session-expires": "Session-Expires", "min-se": "Min-SE", "require": "Require",
             "retry-after": "Retry-After"}
REQUIRED = ("via", "call-id", "cseq", "from", "to")
MULTI = ("via", "contact", "route", "record-route")  # comma-separated lists split into one entry each
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 415: "Unsupported Media Type",
           422: "Session Interval Too Small", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
           500: "Server Internal Error", 503: "Service Unavailable"}
# single character classes: re.search with one class and no quantifier nesting is linear
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and line feed are the only ones allowed
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_DIGITS = re.compile(r"[0-9]+")
_KNOWN = frozenset(CANONICAL) | frozenset(COMPACT) | {"accept", "p-asserted-identity", "organization", "date",
                                                      "allow-events", "user-agent", "min-expires", "reason"}


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

    @property
    def from_tag(self) -> str:
        return param(self.get("from") or "", "tag") or ""

    @property
    def to_tag(self) -> str:
        return param(self.get("to") or "", "tag") or ""

    def serialize(self) -> bytes:
        start = (f"{self.method} {self.uri} SIP/2.0" if self.is_request
                 else f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status or 0, '')}")
        lines = [start]
        for k, v in self.headers:
            if k != "content-length":
                lines.append(f"{CANONICAL.get(k, k.title())}: {v}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


# --- header values -------------------------------------------------------------------------
def _params_part(header: str) -> str:
    """The part of a header value that holds header parameters: after the name-addr's '>' if the
    value has one (URI parameters inside <...> are not header parameters), else after the URI."""
    lt = header.find("<")
    if lt >= 0:
        gt = header.find(">", lt)
        return header[gt + 1:] if gt >= 0 else ""
    semi = header.find(";")
    return header[semi:] if semi >= 0 else ""


def param(header: str, name: str) -> str | None:
    """A ;name=value header parameter (case-insensitive name); "" for a flag, None when absent."""
    name = name.lower()
    for item in _params_part(header).split(";")[1:]:
        key, eq, value = item.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"') if eq else ""
    return None


def uri_of(header: str) -> str:
    """The URI inside a From/To/Contact value: <sip:...> or the bare form."""
    lt = header.find("<")
    if lt >= 0:
        gt = header.find(">", lt)
        return header[lt + 1:gt] if gt >= 0 else ""
    return header.split(";", 1)[0].strip()


def _strip_scheme(uri: str) -> str:
    low = uri[:5].lower()
    if low.startswith("sips:"):
        return uri[5:]
    if low.startswith("sip:") or low.startswith("tel:"):
        return uri[4:]
    return uri


def user_of(uri: str) -> str:
    """The user part of a SIP URI ("100" of sip:100@host;user=phone), "" when there is none."""
    rest = _strip_scheme(uri.strip())
    at = rest.find("@")
    if at <= 0:
        return ""
    user = rest[:at].split(";", 1)[0].split(":", 1)[0]
    return user if len(user) <= 64 else ""


def parse_port(text: str) -> int:
    """A port number 1-65535 from text; SipParseError otherwise (99999, -1, 'x', '' all fail)."""
    if not text or len(text) > 5 or not _DIGITS.fullmatch(text):
        raise SipParseError(f"bad port {text[:8]!r}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise SipParseError(f"bad port {text!r}")
    return port


def host_port_of(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """Host and port of a SIP URI (no resolution: the host may be a name)."""
    rest = _strip_scheme(uri.strip())
    rest = rest.split(";", 1)[0].split("?", 1)[0].split(">", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise SipParseError("bad IPv6 reference")
        host, tail = rest[1:end], rest[end + 1:]
        port = parse_port(tail[1:]) if tail.startswith(":") else default_port
    else:
        host, colon, port_text = rest.partition(":")
        port = parse_port(port_text) if colon else default_port
    if not host or len(host) > 253:
        raise SipParseError("bad host")
    return host, port


def ip_literal(host: str) -> str | None:
    """The host if it is an IP address literal, else None (a name is never resolved here)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


# --- parsing ---------------------------------------------------------------------------------
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
    text = text.replace("\r\n", "\n")
    if _CONTROL_TEXT.search(text):  # one linear scan for NUL, bare CR, escapes... in any line
        raise SipParseError("control character in the headers")
    raw_lines = text.split("\n")
    if len(raw_lines) > 2 * MAX_HEADERS:
        raise SipParseError("too many headers")
    start = raw_lines[0].strip()
    if len(start) > MAX_START_LINE:
        raise SipParseError("bad start line")
    msg = SipMessage()
    _parse_start(start, msg)
    lines: list[str] = []
    for line in raw_lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and lines:  # folded continuation
            lines[-1] += " " + line.strip()
            if len(lines[-1]) > MAX_HEADER:
                raise SipParseError("header too long")
        elif len(line) > MAX_HEADER:
            raise SipParseError("header too long")
        elif not line.isspace():
            lines.append(line)
    if len(lines) > MAX_HEADERS:
        raise SipParseError("too many headers")
    headers = msg.headers
    first: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if not colon or (key not in _KNOWN and not _TOKEN.fullmatch(key)):
            raise SipParseError(f"bad header line {line[:40]!r}")
        value = value.strip()
        key = COMPACT.get(key, key)
        if key in MULTI and "," in value:
            parts = _split_commas(value)
            headers.extend((key, part) for part in parts)
            if parts:
                first.setdefault(key, parts[0])
        else:
            headers.append((key, value))
            first.setdefault(key, value)
    _check(msg, first)
    clen = first.get("content-length")
    if clen is not None:
        n = _number(clen, "Content-Length", 5)
        if n > len(body):
            raise SipParseError("bad Content-Length (body truncated)")
        body = body[:n]
    msg.body = body
    return msg


def _parse_start(start: str, msg: SipMessage) -> None:
    if start.startswith("SIP/2.0 "):
        code, _, reason = start[8:].partition(" ")
        if len(code) != 3 or not _DIGITS.fullmatch(code) or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad start line {start[:80]!r}")
        msg.status, msg.reason = int(code), reason
        return
    parts = start.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not _TOKEN.fullmatch(parts[0]) or not parts[0][0].isalpha():
        raise SipParseError(f"bad start line {start[:80]!r}")
    if not parts[1] or ":" not in parts[1]:
        raise SipParseError("bad Request-URI")
    msg.method, msg.uri = parts[0].upper(), parts[1]


def _number(text: str, what: str, max_digits: int, maximum: int | None = None) -> int:
    text = text.strip()
    if not text or len(text) > max_digits or not _DIGITS.fullmatch(text):
        raise SipParseError(f"bad {what}")
    n = int(text)
    if maximum is not None and n > maximum:
        raise SipParseError(f"bad {what}")
    return n


def _check(msg: SipMessage, first: dict[str, str]) -> None:
    """Presence and ranges of the headers every later step relies on (``first``: name -> first value)."""
    for req in REQUIRED:
        if req not in first:
            raise SipParseError(f"missing {CANONICAL[req]} header")
    num, _, method = first["cseq"].strip().partition(" ")
    _number(num, "CSeq", 10, CSEQ_MAX)
    method = method.strip()
    if not method or not _TOKEN.fullmatch(method):
        raise SipParseError("bad CSeq")
    if msg.is_request and method.upper() != msg.method:
        raise SipParseError("CSeq method does not match the request")
    if method != method.upper():
        msg.set("cseq", f"{int(num)} {method.upper()}")
    call_id = first["call-id"]
    if not call_id or len(call_id) > MAX_CALL_ID or " " in call_id or "\t" in call_id:
        raise SipParseError("bad Call-ID")
    via = first["via"]
    proto, _, rest = via.partition(" ")
    if not proto.upper().startswith("SIP/2.0/") or not rest.strip():
        raise SipParseError("bad Via")
    sent_by = rest.split(";", 1)[0].strip()
    host_port_of(sent_by)  # port range-checked; the host is never resolved
    rport = param(via, "rport")
    if rport:
        parse_port(rport)
    for name, digits, maximum in (("expires", 10, 2**32 - 1), ("max-forwards", 3, 255), ("min-se", 10, 2**32 - 1)):
        value = first.get(name)
        if value is not None:
            _number(value, CANONICAL[name], digits, maximum)
    se = first.get("session-expires")
    if se is not None:
        _number(se.split(";", 1)[0], "Session-Expires", 10, 2**32 - 1)


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


# --- responses -------------------------------------------------------------------------------
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
    """RFC 3581 / 3261 18.2.1: record where the request really came from in the top Via.

    The response itself always goes to the packet's source (symmetric response routing); these
    parameters tell a NAT'd client its public address. Any received/rport it sent is replaced.
    """
    head, _, params = via.partition(";")
    kept = []
    had_rport = False
    for item in params.split(";") if params else []:
        key = item.partition("=")[0].strip().lower()
        if key == "rport":
            had_rport = True
        elif key != "received" and item.strip():
            kept.append(item.strip())
    sent_host = head.split()[-1].rsplit(":", 1)[0].strip("[]") if head.split() else ""
    if had_rport:
        kept += [f"rport={port}", f"received={host}"]
    elif sent_host != host:
        kept.append(f"received={host}")
    return ";".join([head.rstrip(), *kept])
