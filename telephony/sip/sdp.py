"""SDP offer/answer for G.711 audio: PCMU/PCMA 8000, telephone-event, ptime 20, hold direction."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .message import ip_literal

STATIC = {0: "PCMU", 8: "PCMA"}
SUPPORTED = {"PCMU": 0, "PCMA": 8}


class SdpError(ValueError):
    pass


@dataclass
class Offer:
    address: str  # an IP literal, or "" when c= named a host (never resolved: media latches instead)
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str]  # pt -> "name/rate"
    direction: str  # sendrecv | sendonly | recvonly | inactive


@dataclass
class Answer:
    codec: str
    payload_type: int
    dtmf_pt: int | None
    remote: tuple[str, int]
    direction: str  # our direction in the answer


MAX_SDP = 8192
MAX_PAYLOAD_TYPES = 32


def parse_offer(body: bytes) -> Offer:
    """The first audio stream of an offer. Linear, bounded, and it never resolves a host name."""
    if len(body) > MAX_SDP:
        raise SdpError("SDP too large")
    try:
        text = body.decode("utf-8", "replace")
    except Exception as exc:  # noqa: BLE001
        raise SdpError("unreadable SDP") from exc
    session_addr = None
    media_addr = None
    port = None
    pts: list[int] = []
    rtpmap: dict[int, str] = {}
    direction = "sendrecv"
    in_audio = False
    seen_media = False
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            seen_media = True
            parts = value.split()
            in_audio = bool(parts) and parts[0] == "audio" and port is None
            if in_audio:
                if len(parts) < 4:
                    raise SdpError("bad m= line")
                port_text = parts[1].split("/")[0]
                if not port_text.isdigit() or len(port_text) > 5 or not 0 <= int(port_text) <= 65535:
                    raise SdpError("bad m= port")
                port = int(port_text)
                pts = [int(p) for p in parts[3:MAX_PAYLOAD_TYPES + 3] if p.isdigit() and len(p) <= 3]
        elif kind == "c":
            m = re.match(r"IN IP[46] (\S+)", value)
            if m:
                if seen_media and in_audio:
                    media_addr = m.group(1).split("/")[0]
                elif not seen_media:
                    session_addr = m.group(1).split("/")[0]
        elif kind == "a" and (in_audio or not seen_media):
            if value.startswith("rtpmap:") and in_audio:
                m = re.match(r"rtpmap:(\d+) ([^/\s]+)/(\d+)", value)
                if m:
                    rtpmap[int(m.group(1))] = f"{m.group(2)}/{m.group(3)}"
            elif value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = value
    addr = media_addr or session_addr
    if port is None or addr is None:
        raise SdpError("no audio stream in the offer")
    if port == 0:
        raise SdpError("the audio stream is disabled (port 0)")
    ip = ip_literal(addr)
    return Offer(ip or "", port, pts, rtpmap, direction)


def negotiate(offer: Offer) -> tuple[str, int, int | None]:
    """Pick the first offered codec we support (offerer's preference) and telephone-event."""
    chosen = None
    for pt in offer.payload_types:
        name = offer.rtpmap.get(pt, "").split("/")[0].upper() or STATIC.get(pt, "")
        rate = offer.rtpmap.get(pt, "x/8000").split("/")[1]
        if name in SUPPORTED and rate == "8000":
            chosen = (name, pt)
            break
    if chosen is None:
        raise SdpError("no common codec (we accept PCMU/8000 and PCMA/8000)")
    dtmf = next((pt for pt in offer.payload_types
                 if offer.rtpmap.get(pt, "").lower().startswith("telephone-event/8000")), None)
    return chosen[0], chosen[1], dtmf


ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def on_hold(offer: Offer) -> bool:
    return offer.direction in ("sendonly", "inactive") or offer.address in ("0.0.0.0", "::")


def no_media_expected(offer: Offer) -> bool:
    """The caller will send us nothing (hold by inactive/recvonly or old-style 0.0.0.0)."""
    return offer.direction in ("recvonly", "inactive") or offer.address in ("0.0.0.0", "::")


def build_answer(*, local_ip: str, local_port: int, codec: str, pt: int, dtmf_pt: int | None, direction: str,
                 session_id: int | None = None, version: int = 1) -> bytes:
    sid = session_id or int(time.time())
    fmts = f"{pt}" + (f" {dtmf_pt}" if dtmf_pt is not None else "")
    lines = [
        "v=0", f"o=TalkyAI {sid} {version} IN IP4 {local_ip}", "s=TalkyAI", f"c=IN IP4 {local_ip}", "t=0 0",
        f"m=audio {local_port} RTP/AVP {fmts}", f"a=rtpmap:{pt} {codec}/8000",
    ]
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
