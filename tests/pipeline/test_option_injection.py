"""An LLM reply that looks like a command-line option, spoken by the offline voice during a real
pipeline call (fake Flux + fake LLM, no TTS key): espeak-ng gets it on stdin, never as an option."""

import asyncio

import pytest

from telephony.media.memcall import FakeCall
from telephony.pipeline.agent import VoicePipelineAgent
from tests.fake_espeak import fake_espeak

pytestmark = pytest.mark.django_db(transaction=True)
REPLY = "-f/etc/hostname --path=/tmp"


async def test_llm_reply_reaches_espeak_on_stdin(cloud, call_row, campaign, settings, tmp_path, monkeypatch):
    await cloud.start(flux={"utterances": [(1.0, 1.6, "read me a file")], "eot_delay_ms": 100},
                      llm={"reply": REPLY, "ttft_ms": 20})
    settings.CARTESIA_API_KEY = ""  # the offline voice (espeak-ng) speaks greeting and reply
    settings.OFFLINE_TTS_ENGINE = "espeak"  # Piper (the default) is covered in tests/offline
    try:
        async with fake_espeak(tmp_path, monkeypatch) as calls:
            call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
            task = asyncio.create_task(VoicePipelineAgent(call).run(call))
            seen = []
            while not any(REPLY in (c["stdin"] or "") for c in seen):
                seen.append(await asyncio.wait_for(calls.get(), 20))
            call._end("bye")
            await asyncio.wait_for(task, 10)
    finally:
        await cloud.stop()
    assert seen[0]["stdin"].strip() == "Hi, this is Acme."  # the greeting, through the same path
    for c in seen:
        assert c["argv"][:5] == ["--stdout", "--stdin", "-v", "en-us", "-s"] and len(c["argv"]) == 6, c["argv"]
        assert not any(REPLY.split()[0] in a for a in c["argv"])
