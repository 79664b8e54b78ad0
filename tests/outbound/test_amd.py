"""Answering-machine detection rules (Asterisk's AMD defaults) on synthetic frames, the beep
detector, and whole outbound calls into sipp playing a machine greeting with a beep (the voicemail
message is left after it) or a person saying hello (the agent takes the call)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from telephony.media.amd import Amd, BeepOrSilence
from tests.sip.peers import PY, manage_shell, read_wav, require, run_in_netns

from . import carrier
from .test_carrier import env  # noqa: F401 - fixture

RNG = np.random.default_rng(7)


def noise(ms: int, level: float = 3000) -> np.ndarray:
    return RNG.normal(0, level, ms * 8)


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * 8)


def tone(ms: int, hz: float = 1000) -> np.ndarray:
    return 8000 * np.sin(2 * np.pi * hz * np.arange(ms * 8) / 8000)


def run(detector, signal: np.ndarray) -> tuple[str | None, int]:
    for i in range(0, len(signal) - 159, 160):
        if detector.feed(signal[i:i + 160]):
            return detector.feed(signal[i:i + 160]), (i // 160 + 1) * 20
    return None, len(signal) // 8


@pytest.mark.parametrize("signal,verdict", [
    (np.concatenate([silence(300), noise(400), silence(2000)]), "human"),  # "Hello?" then waits
    (np.concatenate([silence(300), noise(3000)]), "machine"),  # a long greeting
    (np.concatenate([noise(200), silence(100), noise(200), silence(100), noise(200), silence(2000)]), "machine"),
    (silence(3000), "machine"),  # nothing at all: initial silence
])
def test_amd_rules(signal, verdict):
    assert run(Amd(), signal)[0] == verdict


def test_amd_gives_up_as_notsure():
    # clicks too short to be words, gaps too short to be the initial silence: no rule fires in 5 s
    signal = np.concatenate([noise(60), silence(100)] * 34)
    assert run(Amd(), signal)[0] == "notsure"


def test_beep_ends_the_wait_when_the_tone_stops():
    verdict, at = run(BeepOrSilence(), np.concatenate([noise(800), silence(200), tone(500), silence(500)]))
    assert verdict == "beep" and at == 1520  # first frame after the 500 ms tone
    verdict, at = run(BeepOrSilence(), np.concatenate([noise(800), silence(3000)]))
    assert verdict == "silence" and at == 2300


def _campaign(e: dict, mode: str) -> None:
    manage_shell(e, f"""
from campaigns.models import DialerSettings
DialerSettings.objects.filter(campaign_id={e['CAMPAIGN']}).update(amd_mode="{mode}",
    voicemail_message="Hi, this is Acme Dental. Please call us back about your appointment.")
""")


def _call(tmp: Path, e: dict, audio: Path, extra: str = "") -> tuple[str, dict]:
    xml = tmp / "callee.xml"
    steps = ('<recv request="INVITE"/>\n' + carrier.TRYING + carrier.resp("200 OK", sdp_port="[media_port]",
                                                                          retrans=True)
             + '<recv request="ACK"/>\n'
             + f'<nop><action><exec rtp_stream="{audio},1,0"/></action></nop>\n' + carrier.RECV_BYE)
    xml.write_text(f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="callee">\n{steps}</scenario>\n')
    script = f"""
sipp -sf {xml} -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 6100 -m 1 -nostdin -timeout 40s > {tmp}/sipp.log 2>&1 &
SIPP=$!
for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done
{shlex.quote(PY)} manage.py dial +12015550123 --campaign {e['CAMPAIGN']} --standalone --agent greeting \
  --rtp-ports 21000-21998 {extra} > {tmp}/dial.log 2>&1
echo "DIAL_RC=$?"
wait $SIPP
echo "SIPP_RC=$?"
"""
    out = run_in_netns(script, e, timeout=120)
    log = (tmp / "dial.log").read_text()
    assert "DIAL_RC=0" in out.stdout and "SIPP_RC=0" in out.stdout, log + out.stdout
    rows = json.loads(manage_shell(e, "import json; from telephony.models import Call; print(json.dumps(list("
                                        "Call.objects.values('outcome','end_reason','recording'))))"))
    return log, rows[0]


def _speech(tmp: Path, text: str, beep: bool) -> Path:
    raw, out = tmp / "speech.wav", tmp / "callee_ulaw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, timeout=30)
    parts = [str(raw)]
    if beep:
        subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", str(tmp / "beep.wav"), "synth", "0.5", "sine", "1000",
                        "vol", "0.5"], check=True, timeout=30)
        parts.append(str(tmp / "beep.wav"))
    subprocess.run(["sox", *parts, "-r", "8000", "-c", "1", "-e", "u-law", str(out), "pad", "0.3", "6"], check=True,
                   timeout=30)
    return out


@pytest.mark.interop
@pytest.mark.slow
def test_machine_gets_the_voicemail_message_after_the_beep(tmp_path, env):  # noqa: F811
    require("sipp", "unshare", "sox", "espeak-ng")
    _campaign(env, "message")
    audio = _speech(tmp_path, "Hi, you have reached Ana. I can't take your call, please leave a message after the "
                              "tone.", beep=True)
    log, row = _call(tmp_path, env, audio)
    assert row["outcome"] == "voicemail" and row["end_reason"] == "agent", log
    left, rate = read_wav(Path(env["MEDIA_ROOT"]) / row["recording"], 0)
    right, _ = read_wav(Path(env["MEDIA_ROOT"]) / row["recording"], 1)
    tone_at = int(np.argmax(np.convolve(np.abs(left), np.ones(400), "same")))  # loudest: the beep
    spoke = np.nonzero(np.abs(right) > 500)[0]
    assert len(spoke) > rate, "the voicemail message was played"
    assert spoke[0] > tone_at, "not before the beep"


@pytest.mark.interop
@pytest.mark.slow
def test_a_person_gets_the_agent(tmp_path, env):  # noqa: F811
    require("sipp", "unshare", "sox", "espeak-ng")
    _campaign(env, "message")
    audio = _speech(tmp_path, "Hello?", beep=False)
    log, row = _call(tmp_path, env, audio, extra="--max-seconds 5")
    assert row["outcome"] == "answered" and row["end_reason"] == "shutdown", log
