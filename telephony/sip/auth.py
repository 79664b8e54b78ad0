"""Digest authentication (RFC 2617 / RFC 8760 MD5, qop=auth) and the registrar's bindings."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

NONCE_TTL_S = 300.0


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def parse_digest(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)}


class DigestAuth:
    """Challenges and checks credentials against HA1 values from ``lookup_ha1(username)``.

    ``lookup_ha1`` returning None for everyone (no accounts configured) means open mode: any
    user/password is accepted, as a plain demo softphone setup expects.
    """

    def __init__(self, realm: str, lookup_ha1: Callable[[str], str | None], open_mode: Callable[[], bool]) -> None:
        self.realm = realm
        self.lookup_ha1 = lookup_ha1
        self.open_mode = open_mode
        self._secret = secrets.token_bytes(16)

    def _nonce(self, ts: int | None = None) -> str:
        ts = int(time.time()) if ts is None else ts
        mac = hmac.new(self._secret, str(ts).encode(), "sha256").hexdigest()[:16]
        return f"{ts:x}.{mac}"

    def _nonce_state(self, nonce: str) -> str:
        try:
            ts_hex, mac = nonce.split(".")
            ts = int(ts_hex, 16)
        except ValueError:
            return "bad"
        if not hmac.compare_digest(self._nonce(ts), nonce):
            return "bad"
        return "stale" if time.time() - ts > NONCE_TTL_S else "ok"

    def challenge(self, stale: bool = False) -> str:
        return (f'Digest realm="{self.realm}", nonce="{self._nonce()}", algorithm=MD5, qop="auth"'
                + (", stale=TRUE" if stale else ""))

    def check(self, method: str, authorization: str | None) -> tuple[bool, bool, str]:
        """(ok, stale, username). In open mode every request is ok."""
        if self.open_mode():
            creds = parse_digest(authorization or "")
            return True, False, creds.get("username", "")
        creds = parse_digest(authorization or "")
        user = creds.get("username", "")
        if not creds or not user:
            return False, False, user
        state = self._nonce_state(creds.get("nonce", ""))
        if state != "ok":
            return False, state == "stale", user
        ha1 = self.lookup_ha1(user)
        if ha1 is None or creds.get("realm") != self.realm:
            return False, False, user
        ha2 = _md5(f"{method}:{creds.get('uri', '')}")
        if creds.get("qop"):
            expected = _md5(f"{ha1}:{creds['nonce']}:{creds.get('nc', '')}:{creds.get('cnonce', '')}:"
                            f"{creds['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{creds['nonce']}:{ha2}")
        return hmac.compare_digest(expected, creds.get("response", "").lower()), False, user


@dataclass
class Binding:
    contact: str
    expires_at: float
    source: tuple[str, int]


class Registrar:
    """Address-of-record -> contact bindings with expiry (in memory: softphones re-register)."""

    def __init__(self, default_expires: int = 3600, max_expires: int = 7200) -> None:
        self.default_expires = default_expires
        self.max_expires = max_expires
        self._bindings: dict[str, dict[str, Binding]] = {}

    def update(self, aor: str, contacts: list[str], expires_header: str | None,
               source: tuple[str, int]) -> list[tuple[str, int]]:
        """Apply a REGISTER; returns the current (contact, seconds left) list for the 200 OK."""
        now = time.monotonic()
        default = self.default_expires
        if expires_header is not None and expires_header.strip().isdigit():
            default = int(expires_header)
        current = self._bindings.setdefault(aor, {})
        for c in contacts:
            if c.strip() == "*":
                if default == 0:
                    current.clear()
                continue
            m = re.search(r";\s*expires=(\d+)", c, re.IGNORECASE)
            exp = min(int(m.group(1)) if m else default, self.max_expires)
            uri = re.sub(r";\s*expires=\d+", "", c, flags=re.IGNORECASE)
            if exp == 0:
                current.pop(uri, None)
            else:
                current[uri] = Binding(uri, now + exp, source)
        return self.lookup(aor)

    def lookup(self, aor: str) -> list[tuple[str, int]]:
        now = time.monotonic()
        current = self._bindings.get(aor, {})
        for uri in [u for u, b in current.items() if b.expires_at <= now]:
            del current[uri]
        return [(b.contact, int(b.expires_at - now)) for b in current.values()]

    def __len__(self) -> int:
        return sum(len(self.lookup(aor)) for aor in list(self._bindings))
