"""DTMF carried in SIP INFO bodies (the pre-RFC 4733 way many PBXs and some phones still use):
``application/dtmf-relay`` (``Signal=5\\r\\nDuration=160``) and ``application/dtmf`` (``5``)."""

from __future__ import annotations

DIGITS = frozenset("0123456789*#ABCD")
_NUMERIC = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")


def dtmf_from_info(content_type: str | None, body: bytes) -> str | None:
    """The digit of a DTMF INFO, or None when the body carries none (bounded: 256 bytes read)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    text = body[:256].decode("ascii", "replace")
    if kind == "application/dtmf-relay":
        for line in text.replace("\r", "\n").split("\n"):
            key, _, value = line.partition("=")
            if key.strip().lower() == "signal":
                return _digit(value.strip())
        return None
    if kind == "application/dtmf":
        return _digit(text.strip())
    return None


def _digit(value: str) -> str | None:
    value = value.upper()
    if value in DIGITS:
        return value
    return _NUMERIC.get(value)
