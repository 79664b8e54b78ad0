"""Echo agent: plays back what the caller says, 500 ms later (a loop-back test of the media path)."""

from __future__ import annotations

import asyncio

from telephony.media.contract import CallHandle


class EchoAgent:
    def __init__(self, delay_ms: int = 500) -> None:
        self.delay_frames = max(1, delay_ms // 20)

    async def run(self, call: CallHandle) -> None:
        delay: list[bytes] = []
        async for frame in call.audio_in():
            delay.append(frame)
            if len(delay) > self.delay_frames:
                call.play(delay.pop(0))
        await asyncio.sleep(0)
