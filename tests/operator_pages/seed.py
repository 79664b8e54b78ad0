"""A finished call with a real stereo recording, for the call page tests (unit and browser)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np

from telephony.media.recording import wav_header

RATE = 8000
# seconds: agent greeting, caller turn 0, agent reply 0, caller turn 1, agent reply 1 (barged)
GREETING = (0.2, 1.4)
CALLER = ((2.0, 3.0), (5.5, 6.5))
REPLIES = ((3.6, 5.0), (7.0, 7.8))


def write_wav(path: Path, seconds: float = 9.0) -> Path:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    caller = np.zeros(n)
    agent = np.zeros(n)
    for a, b in CALLER:
        caller[int(a * RATE):int(b * RATE)] = 0.3 * np.sin(2 * np.pi * 220 * t[int(a * RATE):int(b * RATE)])
    for a, b in (GREETING, *REPLIES):
        agent[int(a * RATE):int(b * RATE)] = 0.4 * np.sin(2 * np.pi * 330 * t[int(a * RATE):int(b * RATE)])
    stereo = np.empty(2 * n, dtype="<i2")
    stereo[0::2] = (caller * 32767).astype("<i2")
    stereo[1::2] = (agent * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_header(stereo.nbytes) + stereo.tobytes())
    return path


def seed_call(media_root: Path, campaign=None):
    """A Call with its WAV under MEDIA_ROOT and two turns whose rows were written when each reply
    ended (as the pipeline does), so the page can align them."""
    from django.utils import timezone

    from telephony.models import Call, Turn

    write_wav(Path(media_root) / "recordings" / "seed-call.wav")
    start = timezone.now() - timedelta(minutes=5)
    call = Call.objects.create(sip_call_id="seed-call", campaign=campaign, caller_uri="browser:op", dialed="browser",
                               codec="PCMU", agent="pipeline", answered_at=start, ended_at=start + timedelta(seconds=9),
                               end_reason="bye", recording="recordings/seed-call.wav", turns_count=2,
                               mouth_to_ear_p50_ms=600, mouth_to_ear_p95_ms=700)
    Call.objects.filter(pk=call.pk).update(started_at=start)
    call.refresh_from_db()
    texts = (("I would like to book an appointment", "Sure, what day suits you?", False, []),
             ("Tuesday please", "Tuesday at", True,
              ["tts cartesia: timeout: no audio", "said 'One moment.' at 1000 ms"]))
    for i, ((user, agent, barge, errors), (_, end)) in enumerate(zip(texts, REPLIES, strict=True)):
        turn = Turn.objects.create(call=call, index=i, user_text=user, agent_text=agent, barge_in=barge,
                                   llm_provider="offline", llm_model="offline-script", tts_provider="offline",
                                   voice_id="offline", eot_received_ms=200, llm_request_ms=210,
                                   llm_first_token_ms=300, tts_request_ms=310, tts_first_audio_ms=500,
                                   first_rtp_ms=600, mouth_to_ear_ms=600, llm_ttft_ms=90, tts_ttfb_ms=190,
                                   errors=errors)
        Turn.objects.filter(pk=turn.pk).update(created_at=start + timedelta(seconds=end + 0.05))
    return call
