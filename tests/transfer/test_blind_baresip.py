"""Blind transfer with a real softphone as the transferee, all inside a private network namespace:
baresip #1 calls the bridge (extension 100); the bridge's test agent (``bridge_main --agent
transfer``) transfers it to extension 200, where baresip #2 is registered. baresip accepts the
REFER (202), calls the target's registered contact itself and reports the outcome in NOTIFY
``message/sipfrag``; on the final 200 the bridge hangs up and the Call row ends "transferred". The
two phones then talk directly (each hears the other's WAV: cross-correlation), without the bridge.
And REFER refused (sipp as the caller, 603): the bridge dials the baresip target and relays audio.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.sip.peers import (
    PY,
    STOP_BRIDGE,
    bridge_env,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
    speech_wav,
)

from . import test_transfer_sipp as sipp
from .legs import CALLER_TEXT, CALLS, RATE, TARGET_TEXT, heard, heard_it, peer, relayed, scenario

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path, TRANSFER_TARGET="200")
    prepare_db(e)
    return e


def test_baresip_accepts_refer_calls_the_target_and_the_bridge_leaves(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    r = scenario(tmp_path, env, answer=True, caller_s=16, target_s=20, agent="transfer")
    log = r["log"]
    assert "transferred by REFER to sip:200" in log, log[-3000:] + r["out"][-2000:]
    [row] = r["rows"]  # the bridge dialled nobody: the caller's phone made the new call
    assert row["direction"] == "inbound" and row["end_reason"] == "transferred", r["rows"]
    caller_ref, _ = read_wav(r["caller_wav"])
    target_ref, _ = read_wav(r["target_wav"])
    matches = relayed(caller_ref[2 * RATE:8 * RATE], heard(r["target"]))[1]
    assert heard_it(matches), f"the target heard the caller on the new call: {matches}"
    matches = relayed(target_ref[2 * RATE:8 * RATE], heard(r["caller"]))[1]
    assert heard_it(matches), f"the caller heard the target: {matches}"


def test_refer_refused_by_sipp_bridges_a_baresip_target_and_audio_flows_both_ways(tmp_path, env):
    """The other path with a real phone as the target: the caller (sipp, streaming speech) refuses
    the REFER with 603; the bridge dials extension 200 (baresip) and relays audio both ways."""
    require("baresip", "sipp", "espeak-ng", "sox", "unshare")
    caller_wav = speech_wav(tmp_path, CALLER_TEXT, "caller.wav")
    ulaw = tmp_path / "caller_ulaw.wav"
    subprocess.run(["sox", str(caller_wav), "-e", "u-law", str(ulaw)], check=True, timeout=30)
    target_wav = speech_wav(tmp_path, TARGET_TEXT, "target.wav", pad_s=6)
    target = peer(tmp_path, "target", target_wav, port=5064, rtp="31000-31100", user="200",
                  domain="127.0.0.1:5060", register="regint=60;answermode=auto")
    xml = tmp_path / "caller.xml"
    flow = sipp.INVITE + sipp.TONE.replace("{tone}", str(ulaw)) + sipp.answer("603 Decline") + sipp.SEND_BYE
    xml.write_text('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="refuses">\n'
                   + flow.replace('milliseconds="3000"', 'milliseconds="8000"') + "</scenario>\n")
    q = shlex.quote
    blog = q(str(tmp_path / "bridge.log"))
    script = f"""
{q(PY)} -m tests.transfer.bridge_main --agent transfer --port 5060 --rtp-ports 20000-20998 > {blog} 2>&1 &
BRIDGE=$!
for i in $(seq 1 100); do grep -q "listening on udp" {blog} 2>/dev/null && break; sleep 0.1; done
(timeout 30 baresip -f {q(str(target))} -t 16 < /dev/null > {q(str(target / 'baresip.log'))} 2>&1) &
TARGET=$!
for i in $(seq 1 100); do grep -q "REGISTER sip:200@" {blog} && break; sleep 0.1; done
sipp -sf {q(str(xml))} -i 127.0.0.1 -p 5070 -mi 127.0.0.1 -mp 6000 -m 1 -nostdin -timeout 30s -timeout_error \
  127.0.0.1:5060 > {q(str(tmp_path / 'caller.log'))} 2>&1
echo "CALLER_RC=$?"
wait $TARGET
""" + STOP_BRIDGE
    out = run_in_netns(script, env, timeout=120)
    log = (tmp_path / "bridge.log").read_text()
    assert "CALLER_RC=0" in out.stdout, out.stdout + log[-3000:]
    assert "REFER refused (603)" in log and "bridged to sip:200" in log, log[-3000:]
    caller_row, leg = json.loads(manage_shell(env, CALLS))
    assert caller_row["end_reason"] == "bye" and (leg["direction"], leg["dialed"], leg["end_reason"]) == (
        "outbound", "200", "transferred"), (caller_row, leg)
    caller_ref, _ = read_wav(caller_wav)
    matches = relayed(caller_ref[2 * RATE:6 * RATE], heard(target))[1]
    assert heard_it(matches), f"the target heard the caller: {matches}"
    target_ref, _ = read_wav(target_wav)
    to_caller = read_wav(Path(env["MEDIA_ROOT"]) / caller_row["recording"], 1)[0]  # what we sent the caller
    matches = relayed(target_ref[2 * RATE:6 * RATE], to_caller)[1]
    assert heard_it(matches), f"the caller was sent the target's voice: {matches}"
