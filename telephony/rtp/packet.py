"""RTP (RFC 3550) header parse/build with one precompiled struct, and RFC 4733 DTMF payloads."""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("!BBHII")
DTMF = struct.Struct("!BBH")
DTMF_DIGITS = "0123456789*#ABCD"


class RtpPacket(NamedTuple):
    pt: int
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """None for anything that is not a well-formed RTP v2 packet (never raises)."""
    n = len(data)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    offset = 12 + (b0 & 0x0F) * 4
    if b0 & 0x10:  # header extension
        if n < offset + 4:
            return None
        offset += 4 + int.from_bytes(data[offset + 2:offset + 4], "big") * 4
    end = n
    if b0 & 0x20:  # padding
        pad = data[-1]
        end -= pad
        if pad == 0:
            return None
    if offset > end:
        return None
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), bytes(data[offset:end]))


def build_rtp(pt: int, seq: int, ts: int, ssrc: int, marker: bool, payload: bytes) -> bytes:
    return HEADER.pack(0x80, (0x80 if marker else 0) | (pt & 0x7F), seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc & 0xFFFFFFFF) + payload


def parse_dtmf(payload: bytes) -> tuple[str, bool, int, int] | None:
    """(digit, end, volume, duration) of an RFC 4733 telephone-event, or None."""
    if len(payload) < 4:
        return None
    event, flags, duration = DTMF.unpack_from(payload)
    if event >= len(DTMF_DIGITS):
        return None
    return DTMF_DIGITS[event], bool(flags & 0x80), flags & 0x3F, duration
