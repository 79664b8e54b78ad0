"""`manage.py dial <extension>` to a softphone registered through Kamailio: baresip registers as
alice (digest against TalkyAI's SIP account, usrloc in PostgreSQL), the command asks a running
bridge over its control channel, the bridge sends the INVITE to the proxy (the only one that knows
where alice is), Kamailio relays it to baresip, which auto-answers and hears the greeting agent
straight from the bridge (RTP never passes the proxy). All inside `unshare -n` (harness.py).
"""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest

from tests.fleet.harness import read, run_fleet, shell
from tests.fleet.test_fleet import LOAD
from tests.sip.peers import PY, baresip_dir, best_lag_corr, read_wav, require, silence_wav

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PHONE_IP = "127.0.0.31"
ROWS = """
import json
from telephony.models import BridgeNode, Call
hosts = {n.pk: n.host for n in BridgeNode.objects.all()}
print(json.dumps([dict(c, host=hosts.get(c.pop('bridge_node_id'), '?')) for c in Call.objects.order_by('pk').values(
    'dialed', 'direction', 'outcome', 'sip_status', 'end_reason', 'answered_at', 'ended_at', 'packets_in',
    'packets_out', 'bridge_node_id')], default=str))
"""
LOCATION = "psql -h 127.0.0.1 -U postgres talky -Atc \"SELECT contact FROM location WHERE username = 'alice'\""
OUTBOUND_ENDED = ("psql -h 127.0.0.1 -U postgres talky -Atc \"SELECT count(*) FROM telephony_call "
                  "WHERE dialed = 'alice' AND ended_at IS NOT NULL\"")


def speech_seconds(x: np.ndarray, rate: int = 8000) -> float:
    """Seconds of clearly audible audio (20 ms windows above an RMS floor): silence records as ~0."""
    win = rate // 50
    n = len(x) // win
    rms = (x[: n * win].reshape(n, win) ** 2).mean(axis=1) ** 0.5
    return float((rms > 300).sum() * 0.02)


def test_dial_reaches_a_softphone_registered_through_kamailio(tmp_path):
    require("baresip", "espeak-ng", "sox")
    t = tmp_path
    # the phone only listens; its call ends (BYE through the proxy) when this 8 s of silence runs out
    d = baresip_dir(t, silence_wav(t, 8), user="alice", ip=PHONE_IP, domain="127.0.0.1",
                    register="auth_pass=s3cret;regint=60;answermode=auto")
    q = shlex.quote
    body = f"""
timeout 90 baresip -f {q(str(d))} -t 80 < /dev/null > $T/baresip.log 2>&1 &
PHONE=$!
EXTRA_PIDS="$EXTRA_PIDS $PHONE"
for i in $(seq 1 150); do {LOCATION} | grep -q '{PHONE_IP}' && break; sleep 0.1; done
{LOCATION} > $T/location.txt
# nobody registered as bob: the proxy answers 404 and nothing rings
{q(PY)} manage.py dial bob > $T/dial_bob.out 2>&1; echo $? > $T/dial_bob.rc
{q(PY)} manage.py dial alice > $T/dial.out 2>&1; echo $? > $T/dial.rc
for i in $(seq 1 300); do [ "$({OUTBOUND_ENDED})" = 1 ] && break; sleep 0.1; done
kill -TERM $PHONE 2>/dev/null; wait $PHONE 2>/dev/null
""" + shell(ROWS, "calls.json")
    out = run_fleet(t, body, kam_extra=LOAD, drain_timeout=1, agent="greeting")
    phone_log = read(t, "baresip.log")
    # baresip registers a Contact user of its own (alice-0x...): the binding, not its spelling, matters
    contact = f"sip:alice[^@\\s]*@{re.escape(PHONE_IP)}:5062"
    assert re.search(contact, read(t, "location.txt")), read(t, "location.txt") + phone_log[-1500:] + out
    dial = read(t, "dial.out")
    assert read(t, "dial.rc").strip() == "0", dial + out
    assert re.search(r"-> INVITE sip:alice@127\.0\.0\.1:5060 to 127\.0\.0\.1:5060", dial), dial
    assert "outcome: answered" in dial and "-> ACK" in dial, dial
    kam = read(t, "kam.log")
    assert re.search(f"INVITE \\S+ -> registered contact {contact}", kam), kam[-2000:]
    bob = read(t, "dial_bob.out")
    assert read(t, "dial_bob.rc").strip() == "1" and "outcome: invalid_number (404" in bob, bob
    try:
        rows = json.loads(read(t, "calls.json").strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(read(t, "calls.json")[-1500:]) from None
    call = next(r for r in rows if r["dialed"] == "alice")
    assert call["direction"] == "outbound" and call["outcome"] == "answered" and call["sip_status"] == 200, call
    assert call["host"] in ("127.0.0.11", "127.0.0.12") and call["answered_at"] and call["ended_at"], call
    assert call["end_reason"] == "bye", call  # the phone hung up, through the proxy
    assert call["packets_in"] > 100 and call["packets_out"] > 100, call  # media both ways, phone <-> bridge
    missed = next(r for r in rows if r["dialed"] == "bob")
    assert missed["outcome"] == "invalid_number" and missed["sip_status"] == 404 and not missed["answered_at"], missed
    # the phone: answered by itself, and heard the agent's greeting
    assert "Call established" in phone_log or "call established" in phone_log.lower(), phone_log[-2000:]
    recs = sorted((d / "rec").glob("dump-*-dec.wav"))
    assert recs, phone_log[-2000:]
    heard, _ = read_wav(recs[-1])
    assert speech_seconds(heard) > 1.0, f"the phone heard {speech_seconds(heard):.2f} s of audio"
    greeting, _ = read_wav(next((t / "media" / "greetings").glob("*.wav")))  # what the agent played (espeak-ng)
    lag, corr = best_lag_corr(greeting, heard, 8000 * 4)
    assert corr > 0.9, (lag, corr)  # the greeting itself (G.711 both ways), not noise or silence
    setup = re.search(r"setup ([\d.]+) ms", dial)
    print(f"dial alice through Kamailio: setup {setup.group(1) if setup else '?'} ms; the phone "
          f"heard the greeting {lag / 8000 * 1000:.0f} ms into its recording, correlation {corr:.4f}")
