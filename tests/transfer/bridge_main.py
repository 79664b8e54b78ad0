"""``run_sip_bridge`` with two more agents, so the interop tests drive transfers without an LLM:

- ``transfer``: after half a second of the caller's audio it transfers the call to
  ``$TRANSFER_TARGET`` (what the pipeline does after the model's ``transfer_call``): REFER, bridge.
- ``warm``: the same moment, a warm transfer: the target's leg is briefed with ``$WARM_SUMMARY_WAV``
  (the pipeline speaks its summary there), then joined; if the target does not take the call the
  agent plays ``$WARM_BACK_WAV`` to the caller (the pipeline says why) and stays on the call.
  ``$TRANSFER_RING_S`` shortens how long the target may ring (the gateway's ``transfer_ring_s``).

    python -m tests.transfer.bridge_main --agent transfer --port 5060 ...   (run_sip_bridge's options)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import django

log = logging.getLogger("telephony.bridge")


class TransferAgent:
    def __init__(self, target: str) -> None:
        self.target = target

    async def run(self, call) -> None:
        from telephony.media.call import TransferFailed

        frames = 0
        async for _frame in call.audio_in():  # the media clock, not a sleep: 25 frames = 0.5 s of call
            frames += 1
            if frames == 25:
                break
        try:
            how = await call.transfer(self.target)
            log.info("test agent: transfer -> %s", how)
        except TransferFailed as exc:
            log.info("test agent: transfer failed: %s", exc)
        async for _frame in call.audio_in():  # stay on the call until it ends
            pass


async def play_all(call, audio: bytes) -> None:
    """Queue a clip and return once its last frame has been sent (or the call ended)."""
    sent = asyncio.Event()
    call.play(audio[:-160])
    call.play(audio[-160:], lambda t: sent.set())
    waits = {asyncio.ensure_future(sent.wait()), asyncio.ensure_future(call.ended.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class WarmAgent:
    def __init__(self, target: str, summary_wav: str, back_wav: str) -> None:
        self.target, self.summary_wav, self.back_wav = target, Path(summary_wav), Path(back_wav)

    async def run(self, call) -> None:
        from telephony.agents.greeting import wav_to_g711
        from telephony.media.call import TransferFailed

        frames = 0
        async for _frame in call.audio_in():  # 25 frames of the media clock = 0.5 s of call
            frames += 1
            if frames == 25:
                break

        async def brief(leg) -> None:
            await play_all(leg, await asyncio.to_thread(wav_to_g711, self.summary_wav, leg.codec))
            log.info("test agent: summary played to the target")

        try:
            how = await call.transfer(self.target, mode="warm", brief=brief)
            log.info("test agent: warm transfer -> %s", how)
        except TransferFailed as exc:
            log.info("test agent: warm transfer failed (%s): %s", exc.outcome, exc)
            await play_all(call, await asyncio.to_thread(wav_to_g711, self.back_wav, call.codec))
            log.info("test agent: told the caller, still on the call")
        async for _frame in call.audio_in():  # stay on the call until it ends
            pass


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    django.setup()
    from django.core.management import call_command

    from telephony.agents import register
    from telephony.media.transfer import TransferMixin

    register("transfer")(lambda call, options: TransferAgent(os.environ["TRANSFER_TARGET"]))
    register("warm")(lambda call, options: WarmAgent(os.environ["TRANSFER_TARGET"], os.environ["WARM_SUMMARY_WAV"],
                                                     os.environ["WARM_BACK_WAV"]))
    TransferMixin.transfer_ring_s = float(os.environ.get("TRANSFER_RING_S", TransferMixin.transfer_ring_s))
    call_command("run_sip_bridge", *sys.argv[1:])


if __name__ == "__main__":
    main()
