import subprocess

import numpy as np
import pytest

from aioptions.codecs import g711
from aioptions.providers.base import MULAW_8K, PCM_16K
from aioptions.providers.markers import HANGUP_MARKER
from aioptions.providers.offline_llm import ScriptedLLM, scripted_reply
from aioptions.providers.offline_stt import OfflineSTT
from aioptions.providers.offline_tts import OfflineTTS


async def synth(text: str, fmt=MULAW_8K) -> bytes:
    u = await OfflineTTS().utterance(fmt)
    for piece in text.split(" "):
        await u.push(piece + " ")
    await u.finish()
    return b"".join([c async for c in u.audio()])


async def test_offline_tts_speaks_plausible_audio_in_the_call_format():
    audio = await synth("Hello, this is a test. It has two sentences.")
    seconds = len(audio) / 8000
    assert 1.5 < seconds < 6
    pcm = g711.ulaw_decode(audio)
    assert np.sqrt(np.mean(pcm.astype(float) ** 2)) > 500  # speech, not silence
    pcm16 = await synth("Hello there.", PCM_16K)
    assert len(pcm16) % 2 == 0 and 0.3 < len(pcm16) / 32000 < 2.5


async def test_offline_tts_cancel_yields_nothing_more():
    u = await OfflineTTS().utterance(MULAW_8K)
    await u.push("First sentence here. ")
    await u.push("Second sentence that must never play. ")
    got = []
    async for chunk in u.audio():
        got.append(chunk)
        await u.cancel()
    assert len(got) == 1


def test_scripted_intents_and_goodbye_marker():
    assert scripted_reply([{"role": "user", "content": "ok thanks, bye"}]).endswith(HANGUP_MARKER)
    assert "Which day" in scripted_reply([{"role": "user", "content": "I need to reschedule"}])
    assert "pressed 5" in scripted_reply([{"role": "user", "content": "[caller pressed 5]"}])
    assert "didn't catch" in scripted_reply([{"role": "user", "content": "zzz qqq"}])


async def test_scripted_llm_streams_word_by_word():
    s = ScriptedLLM().stream([{"role": "user", "content": "yes please"}])
    deltas = [d async for d in s]
    assert len(deltas) > 3 and s.result.ttft_ms is not None and "all set" in s.result.text


@pytest.mark.slow
async def test_offline_stt_turn_from_real_speech(tmp_path):
    wav = tmp_path / "u.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "I would like to book an appointment for Tuesday"], check=True)
    speech = await synth("I would like to book an appointment for Tuesday.")
    s = await OfflineSTT().open(MULAW_8K)
    silence = b"\xff" * 160
    events = []
    for _ in range(25):
        await s.send(silence)
    for i in range(0, len(speech), 160):
        await s.send(speech[i:i + 160])
        while not s._events.empty():
            events.append(s._events.get_nowait())
    start_at = 0.5
    for _ in range(60):
        await s.send(silence)
    import asyncio

    async def rest():
        async for ev in s.events():
            events.append(ev)
            if ev.kind == "EndOfTurn":
                return

    await asyncio.wait_for(rest(), 15)
    await s.close()
    kinds = [e.kind for e in events]
    assert kinds[0] == "StartOfTurn" and kinds[-1] == "EndOfTurn"
    assert events[0].audio_window_start == pytest.approx(start_at, abs=0.15)  # prompt: barge-in needs it
    text = events[-1].transcript.lower()
    assert "appointment" in text and "tuesday" in text
    assert start_at < events[-1].speech_end < start_at + len(speech) / 8000 + 0.2


async def test_offline_stt_ignores_silence():
    s = await OfflineSTT().open(MULAW_8K)
    for _ in range(100):
        await s.send(b"\xff" * 160)
    assert s._events.empty()
    await s.close()
