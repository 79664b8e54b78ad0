"""SIP digest authentication (RFC 2617 / RFC 7616 MD5, qop=auth), safe on attacker input.

What this guards against, and how:
- replayed responses: ``qop=auth`` responses carry a nonce-count; the last accepted count per
  nonce is remembered and a response whose count is not greater is refused ("replay");
- forged or old nonces: a nonce is ``<issued-at>.<salt>.<hmac>``, so it is checked without
  server state, and it expires after ``nonce_ttl`` (the challenge then says ``stale=true``);
- a response captured for one Request-URI and replayed against another: the digest ``uri`` must
  equal the request's Request-URI;
- user enumeration: an unknown user costs the same work as a wrong password (a dummy HA1 is
  hashed) and the gateway answers both with the same 401;
- CPU exhaustion: the Authorization header is parsed by a hand-written linear tokenizer, capped
  in length and parameter count; no regex runs on attacker input.

Nonce-count state is bounded (``max_nonces``, LRU, expired with the nonce). When an entry is
evicted under pressure, every nonce issued at or before it is answered ``stale`` from then on,
so eviction can only cost a legitimate phone one extra round trip, never let a replay through.
Entries are created only by successful authentications, so an attacker without a password
cannot fill the table.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Temporary re-export while the gateway still imports ``Registrar`` from this module.
from telephony.sip.registrar import Binding, Registrar  # noqa: F401

NONCE_TTL_S = 300.0
MAX_HEADER_LEN = 4096
MAX_PARAMS = 24
MAX_USERNAME_LEN = 128
MAX_NONCES = 10_000
_CLOCK_SKEW_S = 5  # a nonce "issued" further in the future than this is not ours
_NC_NO_QOP = 1 << 40  # RFC 2069 responses (no qop) have no count: such a nonce is single-use
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!%*+`'~")
_HEX = frozenset("0123456789abcdefABCDEF")

REASONS = ("ok", "open", "missing", "malformed", "stale", "bad_nonce", "unknown_user", "wrong_password",
           "replay", "uri_mismatch", "realm")


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8", "surrogatepass")).hexdigest()


def _parse(header: str | None) -> dict[str, str] | None:
    """``Digest k=v, k="quoted"`` -> {k: v} (lower-case keys), or None when malformed.

    One left-to-right pass with constant work per character; over-long headers, too many or
    duplicated parameters, control characters and unterminated quotes are malformed.
    """
    if header is None or len(header) > MAX_HEADER_LEN:
        return None
    s = header.strip()
    n = len(s)
    i = 0
    while i < n and s[i] in _TOKEN:
        i += 1
    if s[:i].lower() != "digest" or i >= n or s[i] not in " \t":
        return None
    params: dict[str, str] = {}
    while True:
        while i < n and s[i] in " \t":
            i += 1
        start = i
        while i < n and s[i] in _TOKEN:
            i += 1
        key = s[start:i].lower()
        while i < n and s[i] in " \t":
            i += 1
        if not key or i >= n or s[i] != "=":
            return None
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and s[i] != '"':
                c = s[i]
                if c == "\\":
                    i += 1
                    if i >= n:
                        return None
                    c = s[i]
                if c < " " and c != "\t" or c == "\x7f":
                    return None
                chars.append(c)
                i += 1
            if i >= n:
                return None  # unterminated quoted-string
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and s[i] in _TOKEN:
                i += 1
            value = s[start:i]
            if not value:
                return None
        if key in params or len(params) >= MAX_PARAMS:
            return None
        params[key] = value
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return params
        if s[i] != ",":
            return None
        i += 1


def parse_digest(header: str) -> dict[str, str]:
    """Parameters of a ``Digest ...`` header value (challenge or credentials); {} when malformed."""
    return _parse(header) or {}


@dataclass(frozen=True)
class AuthResult:
    """The verdict of :meth:`DigestAuth.check`.

    ``reason`` is for logs and lockout accounting only: the peer must get the same 401 for
    "unknown_user" and "wrong_password". ``stale`` means: challenge again with ``stale=true``.
    """

    ok: bool
    stale: bool
    user: str
    reason: str

    # Temporary shim: the gateway still unpacks ``ok, stale, user = auth.check(...)``.
    def __iter__(self) -> Iterator[bool | str]:
        return iter((self.ok, self.stale, self.user))

    def __getitem__(self, index: int) -> bool | str:
        return (self.ok, self.stale, self.user)[index]


class DigestAuth:
    """Challenges and checks credentials against HA1 values from ``lookup_ha1(username)``.

    ``open_mode()`` true (no SIP account exists) accepts every request, as a demo softphone
    setup expects; it is asked on every check, so accounts created later apply at once.
    ``secret`` signs nonces; pass the same one to every bridge behind a dispatcher so a nonce
    from one is valid on another (nonce-count state stays per process).
    """

    def __init__(self, realm: str, lookup_ha1: Callable[[str], str | None], open_mode: Callable[[], bool], *,
                 clock: Callable[[], float] = time.time, secret: bytes | None = None,
                 nonce_ttl: float = NONCE_TTL_S, max_nonces: int = MAX_NONCES) -> None:
        self.realm = realm
        self.lookup_ha1 = lookup_ha1
        self.open_mode = open_mode
        self.clock = clock
        self.nonce_ttl = nonce_ttl
        self.max_nonces = max(1, max_nonces)
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._dummy_key = secrets.token_hex(16)
        # nonce -> (issued_at, last accepted nc); order = least recently used first
        self._nc: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._evicted_upto = -1  # nonces issued at or before this lost their nc state: stale

    # -- nonces ---------------------------------------------------------------------------
    def _mac(self, ts_hex: str, salt: str) -> str:
        msg = f"{ts_hex}.{salt}.{self.realm}".encode()
        return hmac.new(self._secret, msg, "sha256").hexdigest()[:32]

    def new_nonce(self) -> str:
        """A fresh signed nonce; the random salt keeps nonces distinct within a second."""
        ts_hex = f"{int(self.clock()):x}"
        salt = secrets.token_hex(8)
        return f"{ts_hex}.{salt}.{self._mac(ts_hex, salt)}"

    def _nonce_issued_at(self, nonce: str) -> int | None:
        """The issue time of a nonce we signed, or None if it is not ours (or nonsense)."""
        if len(nonce) > 80:
            return None
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        ts_hex, salt, mac = parts
        if not (0 < len(ts_hex) <= 12 and len(salt) == 16 and len(mac) == 32):
            return None
        if not all(c in _HEX for c in ts_hex) or not all(c in _HEX for c in salt):
            return None
        if not hmac.compare_digest(self._mac(ts_hex, salt), mac):
            return None
        ts = int(ts_hex, 16)
        return None if ts > self.clock() + _CLOCK_SKEW_S else ts

    def challenge(self, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce."""
        realm = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        return (f'Digest realm="{realm}", nonce="{self.new_nonce()}", algorithm=MD5, qop="auth"'
                + (", stale=true" if stale else ""))

    # -- nonce-count state ----------------------------------------------------------------
    def _prune_nc(self, now: float) -> None:
        """Drop state of expired nonces from the LRU end (amortised O(1) per check)."""
        for _ in range(8):
            if not self._nc:
                return
            nonce, (issued, _nc) = next(iter(self._nc.items()))
            if now - issued <= self.nonce_ttl:
                return
            del self._nc[nonce]

    def _accept_nc(self, nonce: str, issued: int, nc: int) -> str:
        """"ok" (and remember nc), "replay", or "stale" when this nonce's state was evicted."""
        prev = self._nc.get(nonce)
        if prev is None:
            if issued <= self._evicted_upto:
                return "stale"
        elif nc <= prev[1] or prev[1] == _NC_NO_QOP:
            return "replay"
        self._nc[nonce] = (issued, nc)
        self._nc.move_to_end(nonce)
        while len(self._nc) > self.max_nonces:
            _old, (old_issued, _) = self._nc.popitem(last=False)
            self._evicted_upto = max(self._evicted_upto, old_issued)
        return "ok"

    def tracked_nonces(self) -> int:
        """How many nonces have nonce-count state (bounded by ``max_nonces``)."""
        return len(self._nc)

    # -- the check ------------------------------------------------------------------------
    def check(self, method: str, authorization: str | None, request_uri: str | None = None) -> AuthResult:
        """Verify ``authorization`` for a request; never raises on any header text.

        ``request_uri`` is the request's Request-URI; the digest ``uri`` must equal it. None
        skips that check (the gateway's old two-argument call; to be removed).
        """
        creds = _parse(authorization) if authorization else None
        if self.open_mode():
            user = (creds or {}).get("username", "")[:MAX_USERNAME_LEN]
            return AuthResult(True, False, user, "open")
        if not authorization or not authorization.strip():
            return AuthResult(False, False, "", "missing")
        if creds is None:
            return AuthResult(False, False, "", "malformed")
        user = creds.get("username", "")
        nonce, uri, response = creds.get("nonce", ""), creds.get("uri", ""), creds.get("response", "").lower()
        qop, nc_hex, cnonce = creds.get("qop"), creds.get("nc", ""), creds.get("cnonce", "")
        if (not user or len(user) > MAX_USERNAME_LEN or not nonce or not uri or len(response) != 32
                or not all(c in _HEX for c in response)
                or creds.get("algorithm", "MD5").upper() != "MD5"):
            return AuthResult(False, False, "", "malformed")
        if qop is not None:
            if (qop.lower() != "auth" or not cnonce or not 0 < len(nc_hex) <= 8
                    or not all(c in _HEX for c in nc_hex) or int(nc_hex, 16) == 0):
                return AuthResult(False, False, "", "malformed")
        if creds.get("realm") != self.realm:
            return AuthResult(False, False, user, "realm")
        if request_uri is not None and uri != request_uri.strip():
            return AuthResult(False, False, user, "uri_mismatch")
        issued = self._nonce_issued_at(nonce)
        if issued is None:
            return AuthResult(False, False, user, "bad_nonce")

        ha1 = self.lookup_ha1(user)
        known = ha1 is not None
        if ha1 is None:  # same hashing work as a real account, so timing does not tell users apart
            ha1 = _md5(f"{user}:{self.realm}:{self._dummy_key}")
        ha2 = _md5(f"{method}:{uri}")
        if qop is not None:
            expected = _md5(f"{ha1.lower()}:{nonce}:{nc_hex}:{cnonce}:{qop}:{ha2}")
        else:
            expected = _md5(f"{ha1.lower()}:{nonce}:{ha2}")
        matches = hmac.compare_digest(expected, response)
        if not known:
            return AuthResult(False, False, user, "unknown_user")
        if not matches:
            return AuthResult(False, False, user, "wrong_password")

        now = self.clock()
        self._prune_nc(now)
        # RFC 7616: stale=true only when the digest is right for an invalid (here: old) nonce
        if now - issued > self.nonce_ttl:
            return AuthResult(False, True, user, "stale")
        verdict = self._accept_nc(nonce, issued, int(nc_hex, 16) if qop is not None else _NC_NO_QOP)
        if verdict != "ok":
            # a valid digest for a used nonce: a replay, or a phone that reordered its requests;
            # stale=true lets the phone retry with a new nonce, and gives a replayer nothing
            return AuthResult(False, True, user, verdict)
        return AuthResult(True, False, user, "ok")

