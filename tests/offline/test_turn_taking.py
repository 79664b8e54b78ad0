"""Offline turn-taking: the first word is kept (pre-roll), a finished sentence ends the turn at a
short pause, an unfinished one waits for the long silence. Behaviour only: the audio is fed
faster than real time and every step waits on the session's own events, never on a clock."""

import asyncio

import pytest

from aioptions.providers import offline_turn
from aioptions.providers.base import MULAW_8K
from aioptions.providers.offline_stt import OfflineSTT

from .speech import espeak_mulaw, feed, first_voiced, silence

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("text", ["What are your opening hours on Saturday?", "Yes, that sounds good.",
                                  "Thank you.", "I'd like that.", "Who am I speaking to?", "No"])
def test_complete_sentences(text):
    assert offline_turn.sentence_complete(text)
    assert offline_turn.end_of_turn(text, None) and offline_turn.end_of_turn(text, 0.9)


@pytest.mark.parametrize("text", ["I would like to book an appointment for", "My name is John and",
                                  "Can I come in on the", "I was wondering if", "So, um", "Let me think...",
                                  "It's about my,", ""])
def test_incomplete_sentences(text):
    assert not offline_turn.sentence_complete(text)
    assert not offline_turn.end_of_turn(text, 0.99)


def test_smart_turn_vetoes_a_statement_it_hears_as_unfinished():
    assert not offline_turn.end_of_turn("I want to book", 0.05)
    assert offline_turn.end_of_turn("I want to book.", 0.3)  # Whisper's full stop: the sentence is whole


def test_smart_turn_model_is_the_pinned_file():
    path = offline_turn.smart_turn_path()
    if path is None:
        pytest.skip("pipecat-ai (model only) not installed: requirements-offline.txt")
    assert offline_turn.smart_turn_available()
    p = offline_turn.smart_turn_probability(__import__("numpy").zeros(16000, "int16"))
    assert 0.0 <= p <= 1.0


async def _events_until_end(s):
    events = []
    async for ev in s.events():
        events.append(ev)
        if ev.kind == "EndOfTurn":
            return events
    return events


async def test_first_word_is_kept_and_a_finished_sentence_ends_at_the_short_pause():
    speech = await espeak_mulaw("Thursday morning works for me.")
    lead = 0.6
    onset = lead + first_voiced(speech)
    s = await OfflineSTT().open(MULAW_8K)
    try:
        # speech, then less silence than the long timeout: only the complete-sentence check can end it
        await feed(s, silence(lead) + speech + silence(s.pause_s + 0.1))
        text, smart, ended = await asyncio.wait_for(s.decisions.get(), 60)
        assert ended, (text, smart)
        events = await asyncio.wait_for(_events_until_end(s), 60)
    finally:
        await s.close()
    kinds = [e.kind for e in events]
    assert kinds == ["StartOfTurn", "EndOfTurn"]
    end = events[-1]
    assert end.trigger == "eot"
    # the audio Whisper heard starts before the speech does (the pre-roll), so nothing was cut
    assert end.audio_window_start < onset - 0.1
    assert end.transcript.lower().startswith("thursday"), end.transcript


async def test_silence_and_noise_start_no_turn():
    import numpy as np

    from aioptions.codecs import g711

    rng = np.random.default_rng(1)
    hiss = g711.ulaw_encode((rng.normal(0, 300, 16000)).astype(np.int16))
    s = await OfflineSTT().open(MULAW_8K)
    await feed(s, silence(1.0) + hiss + silence(1.0))
    assert s._events.empty()
    await s.close()


async def test_an_unfinished_sentence_waits_for_the_long_silence():
    from aioptions.providers.offline_piper import piper_available

    from .speech import piper_mulaw

    if not piper_available():
        pytest.skip("piper not installed")
    speech = piper_mulaw("I would like to book an appointment for")
    s = await OfflineSTT().open(MULAW_8K)
    try:
        await feed(s, silence(0.5) + speech + silence(s.pause_s + 0.1))
        text, smart, ended = await asyncio.wait_for(s.decisions.get(), 60)
        assert not ended and text.lower().rstrip(".").endswith("for"), (text, smart)
        assert [e.kind for e in _drain(s)] == ["StartOfTurn"]  # still listening: no EndOfTurn yet
        await feed(s, silence(s.silence_s))
        events = await asyncio.wait_for(_events_until_end(s), 60)
    finally:
        await s.close()
    assert events[-1].kind == "EndOfTurn" and events[-1].trigger == "timeout"
    assert "appointment" in events[-1].transcript.lower()


def _drain(s) -> list:
    out = []
    while not s._events.empty():
        out.append(s._events.get_nowait())
    return out


async def test_a_complete_sentence_decoded_early_still_waits_for_the_pause():
    """The decode starts at 120 ms of silence; the turn ends only once the pause reaches 200 ms."""
    from .speech import trim_tail

    speech = trim_tail(await espeak_mulaw("Thursday morning works for me."))
    s = await OfflineSTT().open(MULAW_8K)
    try:
        await feed(s, silence(0.5) + speech)
        while s.audio_seconds - s._last_voiced < s.decode_s:  # stop feeding as soon as the decode starts
            await feed(s, silence(0.02))
        assert s.audio_seconds - s._last_voiced < s.pause_s
        _, _, complete = await asyncio.wait_for(s.decisions.get(), 60)
        assert complete
        assert [e.kind for e in _drain(s)] == ["StartOfTurn"]  # the pause is not long enough yet
        await feed(s, silence(0.1))
        events = await asyncio.wait_for(_events_until_end(s), 60)
    finally:
        await s.close()
    assert events[-1].trigger == "eot"
