"""The agent of a bridged transfer: it says nothing, it only carries one leg's audio to the other.

When the bridge transfers by dialling the target itself (REFER refused), the caller's call and
the new leg each get a ``RelayAgent`` pointing at the other call: every 20 ms frame that arrives
on this leg (``audio_in``, already through the jitter buffer and concealed) is queued on the
peer's paced output (``play``), translated between PCMU and PCMA when the legs differ. Both
calls keep their own RTP session, media clock slot and recording, so the caller's recording
goes on with the target's voice on the agent channel.

Bounded by design: a peer that is not sending (on hold, not yet verified) does not let audio
pile up — past ``max_queue_ms`` new frames are dropped, so the delay through the bridge never
grows. When either leg ends, the other is ended too (reason "transferred").
"""

from __future__ import annotations

from collections.abc import Callable

from aioptions.codecs import g711

FRAME_BYTES = 160  # 20 ms of G.711 at 8 kHz


def transcoder(src: str, dst: str) -> Callable[[bytes], bytes]:
    """G.711 law conversion by table (no PCM round trip through numpy floats)."""
    if src == dst:
        return lambda frame: frame
    return g711.ulaw_to_alaw if (src, dst) == ("PCMU", "PCMA") else g711.alaw_to_ulaw


class RelayAgent:
    """Copies the call's inbound audio to ``peer`` (another ``LiveCall``) until either ends."""

    def __init__(self, peer, max_queue_ms: int = 200) -> None:
        self.peer = peer
        self.max_queue_bytes = max_queue_ms * 8
        self.frames = 0  # frames relayed
        self.dropped = 0  # frames dropped because the peer's queue was full

    async def run(self, call) -> None:
        peer = self.peer
        try:
            if peer is None or peer.ended.is_set():
                return
            convert = transcoder(call.codec, peer.codec)
            async for frame in call.audio_in():
                if peer.ended.is_set():
                    break
                if peer.playout_queued_bytes >= self.max_queue_bytes:
                    self.dropped += 1
                    continue
                peer.play(convert(frame))
                self.frames += 1
        finally:
            # either side hung up: the bridge ends the other one (a bridge of one is no call)
            for leg in (peer, call):
                if leg is not None and not leg.ended.is_set():
                    leg.end_now("transferred")
