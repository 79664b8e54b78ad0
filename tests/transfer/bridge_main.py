"""``run_sip_bridge`` with one more agent, ``transfer``: after half a second of the caller's audio
it transfers the call to ``$TRANSFER_TARGET`` (what the pipeline does after the model's
``transfer_call``), so the sipp tests drive REFER and the bridge without an LLM.

    python -m tests.transfer.bridge_main --agent transfer --port 5060 ...   (run_sip_bridge's options)
"""

from __future__ import annotations

import logging
import os
import sys

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


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    django.setup()
    from django.core.management import call_command

    from telephony.agents import register

    register("transfer")(lambda call, options: TransferAgent(os.environ["TRANSFER_TARGET"]))
    call_command("run_sip_bridge", *sys.argv[1:])


if __name__ == "__main__":
    main()
