"""The registrar: address-of-record -> contact bindings with expiry, bounded on every axis.

It faces the network, so an attacker decides what goes in. Memory stays flat because:
- bindings are capped per AOR, per source (IPv4 address or IPv6 /64) and in total, and a
  REGISTER that would cross a cap changes nothing and raises :class:`RegistrarFull`;
- AOR and Contact strings are bounded in length, Expires values are digits only and clamped;
- expired bindings leave through a min-heap ordered by expiry (each one is pruned once, a few on
  every update and all on :meth:`prune`); the heap is rebuilt when refreshes have filled it with
  superseded entries, so it never holds more than about twice the live bindings;
- empty AORs and sources with no binding are deleted.

Plain Python, no Django and no I/O; the clock is injected so tests drive time.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from telephony.sip.policy import SipPolicy, source_key

MAX_AOR_LEN = 256
MAX_CONTACT_LEN = 512
_MAX_EXPIRES_DIGITS = 10  # longer digit strings are clamped without being converted
_PRUNE_PER_UPDATE = 64


class RegistrarError(Exception):
    """A REGISTER the registrar refuses; ``status`` is the SIP response code to answer."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRegister(RegistrarError):
    """Malformed input (reason: "aor", "contact", "expires", "star") -> 400 Bad Request."""


class IntervalTooBrief(RegistrarError):
    """Expiry below ``min_expires`` -> 423, with a ``Min-Expires: <min_expires>`` header."""

    status = 423

    def __init__(self, min_expires: int) -> None:
        super().__init__("interval_too_brief")
        self.min_expires = min_expires


class RegistrarFull(RegistrarError):
    """A binding cap would be crossed (reason: "aor", "source" or "total").

    ``status`` is 403 for the per-AOR and per-source caps (that client is asking for too much)
    and 503 for the total cap (the server is full; a phone may retry later).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.status = 503 if reason == "total" else 403


@dataclass(slots=True)
class Binding:
    contact: str  # the Contact value to echo in the 200 OK, without its expires parameter
    uri: str  # the contact URI, where calls to this AOR are sent
    expires_at: float
    source: tuple[str, int]
    seq: int  # identifies this binding's live heap entry (older entries are superseded)


def split_contacts(value: str) -> list[str]:
    """Split one Contact header value at the commas outside quotes and <...> (one linear pass)."""
    out: list[str] = []
    start, quoted, angle, escaped = 0, False, False, False
    for i, c in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return [c for c in out if c]


def _split_params(rest: str) -> list[str]:
    """``;a=1;b="x;y"`` -> ['a=1', 'b="x;y"'], quote-aware, linear."""
    out: list[str] = []
    start, quoted = 0, False
    for i, c in enumerate(rest):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            out.append(rest[start:i])
            start = i + 1
    out.append(rest[start:])
    return [p.strip() for p in out if p.strip()]


def parse_contact(value: str) -> tuple[str, str, str | None]:
    """A Contact value -> (uri, contact without ;expires, expires param or None).

    Raises InvalidRegister("contact") when it is too long or has no URI.
    """
    if len(value) > MAX_CONTACT_LEN:
        raise InvalidRegister("contact")
    quoted, lt = False, -1
    for i, c in enumerate(value):
        if c == '"':
            quoted = not quoted
        elif c == "<" and not quoted:
            lt = i
            break
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise InvalidRegister("contact")
        uri, head, rest = value[lt + 1:gt].strip(), value[:gt + 1], value[gt + 1:]
    else:  # addr-spec form: every ;param after the URI is a header parameter
        uri, _, rest = value.partition(";")
        uri = head = uri.strip()
        rest = ";" + rest if rest else ""
    if not uri or any(c in uri for c in ' \t"<>'):
        raise InvalidRegister("contact")
    kept, expires = [], None
    for p in _split_params(rest.strip()):
        name, eq, val = p.partition("=")
        if name.strip().lower() == "expires" and eq:
            expires = val.strip()
        else:
            kept.append(p)
    return uri, head + "".join(";" + p for p in kept), expires


class Registrar:
    """Address-of-record -> contact bindings with expiry (in memory: softphones re-register)."""

    def __init__(self, policy: SipPolicy | None = None, *, clock: Callable[[], float] = time.monotonic,
                 default_expires: int = 3600, max_expires: int = 7200, min_expires: int = 0) -> None:
        self.policy = policy or SipPolicy()
        self.clock = clock
        self.max_expires = max_expires
        self.default_expires = min(default_expires, max_expires)
        self.min_expires = min_expires
        self._aors: dict[str, dict[str, Binding]] = {}
        self._per_source: dict[str, int] = {}
        self._total = 0
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0

    # -- parsing --------------------------------------------------------------------------
    def parse_expires(self, value: str) -> int:
        """Digits only, clamped to [0, max_expires]; anything else -> InvalidRegister("expires")."""
        v = value.strip()
        if not v or not v.isascii() or not v.isdigit():
            raise InvalidRegister("expires")
        if len(v) > _MAX_EXPIRES_DIGITS:
            return self.max_expires
        return min(int(v), self.max_expires)

    # -- the REGISTER ---------------------------------------------------------------------
    def update(self, aor: str, contacts: Iterable[str], expires_header: str | None,
               source: tuple[str, int]) -> list[tuple[str, int]]:
        """Apply a REGISTER; returns the current (contact, seconds left) list for the 200 OK.

        All or nothing: a REGISTER that is malformed or would cross a cap changes no binding.
        Raises InvalidRegister, IntervalTooBrief or RegistrarFull.
        """
        now = self.clock()
        self.prune(max_items=_PRUNE_PER_UPDATE)
        if not aor or len(aor) > MAX_AOR_LEN:
            raise InvalidRegister("aor")
        header_exp = self.default_expires if expires_header is None else self.parse_expires(expires_header)
        cap = self.policy.max_bindings_per_aor
        wanted: dict[str, tuple[str, int]] = {}  # uri -> (contact, seconds); last one wins
        star = False
        for value in contacts:
            if len(value) > MAX_CONTACT_LEN * cap:
                raise RegistrarFull("aor")
            for c in split_contacts(value):
                if c == "*":
                    star = True
                    continue
                uri, contact, exp = parse_contact(c)
                seconds = header_exp if exp is None else self.parse_expires(exp)
                if 0 < seconds < self.min_expires:
                    raise IntervalTooBrief(self.min_expires)
                wanted.pop(uri, None)
                wanted[uri] = (contact, seconds)
                if len(wanted) > cap:
                    raise RegistrarFull("aor")
        if star:  # RFC 3261 10.3 step 6: '*' only alone and with Expires: 0
            if wanted or expires_header is None or header_exp != 0:
                raise InvalidRegister("star")
            for uri in list(self._aors.get(aor, ())):
                self._remove(aor, uri)
            return []
        self._drop_expired_of(aor, now)
        try:
            self._check_caps(aor, wanted, source[0])
        except RegistrarFull as full:
            if full.reason == "aor":
                raise
            self.prune()  # expired bindings elsewhere may free room; then decide
            self._check_caps(aor, wanted, source[0])
        for uri, (contact, seconds) in wanted.items():
            if seconds == 0:
                self._remove(aor, uri)
            else:
                self._put(aor, uri, contact, now + seconds, source)
        return self.lookup(aor)

    def _check_caps(self, aor: str, wanted: dict[str, tuple[str, int]], ip: str) -> None:
        current = self._aors.get(aor, {})
        key = source_key(ip)
        added = removed = from_src = 0
        for uri, (_contact, seconds) in wanted.items():
            old = current.get(uri)
            old_here = old is not None and source_key(old.source[0]) == key
            if seconds == 0:
                removed += old is not None
                from_src -= old_here
            else:
                added += old is None
                from_src += not old_here
        if len(current) + added - removed > self.policy.max_bindings_per_aor:
            raise RegistrarFull("aor")
        if (from_src > 0 and not self.policy.is_trusted(ip)
                and self._per_source.get(key, 0) + from_src > self.policy.max_bindings_per_source):
            raise RegistrarFull("source")
        if added > removed and self._total + added - removed > self.policy.max_bindings_total:
            raise RegistrarFull("total")

    # -- bookkeeping ----------------------------------------------------------------------
    def _put(self, aor: str, uri: str, contact: str, expires_at: float, source: tuple[str, int]) -> None:
        current = self._aors.setdefault(aor, {})
        old = current.get(uri)
        if old is not None:
            self._uncount(old)
        else:
            self._total += 1
        self._seq += 1
        current[uri] = Binding(contact, uri, expires_at, source, self._seq)
        key = source_key(source[0])
        self._per_source[key] = self._per_source.get(key, 0) + 1
        heapq.heappush(self._heap, (expires_at, self._seq, aor, uri))
        if len(self._heap) > 2 * self._total + 1024:  # refreshes left superseded entries: rebuild
            self._heap = [(b.expires_at, b.seq, a, u) for a, bs in self._aors.items() for u, b in bs.items()]
            heapq.heapify(self._heap)

    def _uncount(self, b: Binding) -> None:
        key = source_key(b.source[0])
        n = self._per_source.get(key, 0) - 1
        if n > 0:
            self._per_source[key] = n
        else:
            self._per_source.pop(key, None)

    def _remove(self, aor: str, uri: str) -> None:
        current = self._aors.get(aor)
        if current is None or uri not in current:
            return
        self._uncount(current.pop(uri))
        self._total -= 1
        if not current:
            del self._aors[aor]

    def _drop_expired_of(self, aor: str, now: float) -> None:
        for uri in [u for u, b in self._aors.get(aor, {}).items() if b.expires_at <= now]:
            self._remove(aor, uri)

    def prune(self, max_items: int | None = None) -> int:
        """Drop expired bindings (at most ``max_items`` heap entries looked at); returns how many.

        Cost is O(k log n) for k expired entries, so a periodic call stays cheap however many
        bindings exist.
        """
        now = self.clock()
        dropped = looked = 0
        heap = self._heap
        while heap and heap[0][0] <= now and (max_items is None or looked < max_items):
            _exp, seq, aor, uri = heapq.heappop(heap)
            looked += 1
            b = self._aors.get(aor, {}).get(uri)
            if b is not None and b.seq == seq:
                self._remove(aor, uri)
                dropped += 1
        return dropped

    # -- reads ----------------------------------------------------------------------------
    def lookup(self, aor: str) -> list[tuple[str, int]]:
        """The live (contact, seconds left) bindings of an AOR."""
        now = self.clock()
        self._drop_expired_of(aor, now)
        return [(b.contact, math.ceil(b.expires_at - now)) for b in self._aors.get(aor, {}).values()]

    def contacts_of(self, aor: str) -> list[str]:
        """The contact URIs registered for an AOR, most recently registered first."""
        now = self.clock()
        live = [b for b in self._aors.get(aor, {}).values() if b.expires_at > now]
        return [b.uri for b in sorted(live, key=lambda b: b.seq, reverse=True)]

    def find_user(self, user: str) -> list[tuple[str, tuple[str, int]]]:
        """(contact URI, source address it registered from) of every live binding whose AOR's user
        part is ``user``, newest first: what "dial extension 201" rings. A scan of the AOR table,
        bounded by its cap, run only when an operator dials, never on the packet path."""
        now = self.clock()
        found = []
        for aor, bindings in self._aors.items():
            rest = aor.split(":", 1)[-1]
            if rest.split("@", 1)[0] == user:
                found += [b for b in bindings.values() if b.expires_at > now]
        return [(b.uri, b.source) for b in sorted(found, key=lambda b: b.seq, reverse=True)]

    def __len__(self) -> int:
        """Live bindings (expired ones are pruned first)."""
        self.prune()
        return self._total

    def sizes(self) -> dict[str, int]:
        """Structure sizes, for the status endpoint and for tests that memory stays bounded."""
        return {"bindings": self._total, "aors": len(self._aors), "sources": len(self._per_source),
                "heap": len(self._heap)}
