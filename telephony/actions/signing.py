"""HMAC-SHA256 signatures on every request we send to an operator's system (tools and webhooks).

``X-Talky-Timestamp: <unix seconds>`` and ``X-Talky-Signature: v1=<hex>`` where the hex is
HMAC-SHA256(secret, f"{timestamp}.".encode() + body). Signing the timestamp with the body lets
the receiver refuse replays (reject timestamps more than 5 minutes old); the ``v1=`` prefix leaves
room for a new scheme without breaking receivers. Verification recipe: README, "Tools, transfer
and webhooks". The secret never appears in a log line or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE = "X-Talky-Signature"
TIMESTAMP = "X-Talky-Timestamp"
TOLERANCE_S = 300


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP: str(ts), SIGNATURE: signature(secret, ts, body)}


def verify(secret: str, headers: dict, body: bytes, now: float | None = None,
           tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver does (and what our tests do): constant-time compare, bounded clock skew."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts, sig = lower.get(TIMESTAMP.lower(), ""), lower.get(SIGNATURE.lower(), "")
    if not ts.isdigit() or abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sig)
