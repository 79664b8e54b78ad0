"""baresip registered to the running bridge as extension 201, called by `manage.py dial 201`:
the bridge finds it in its registrar (over the control channel), baresip auto-answers and hears
the campaign greeting (cross-correlated with the greeting the bridge rendered)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.sip.peers import (
    PY,
    STOP_BRIDGE,
    baresip_dir,
    best_lag_corr,
    bridge_env,
    bridge_script,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
    silence_wav,
    windowed_corr,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path)
    prepare_db(e)
    return e


def test_dial_a_registered_softphone(tmp_path, env):
    require("baresip", "sox", "espeak-ng", "unshare")
    d = baresip_dir(tmp_path, silence_wav(tmp_path, 14), user="201",
                    register="regint=60;answermode=auto", domain="127.0.0.1:5060")
    blog = shlex.quote(str(tmp_path / "bridge.log"))
    script = bridge_script(tmp_path, agent="greeting") + f"""
(timeout 30 baresip -f {shlex.quote(str(d))} -t 14 < /dev/null > {shlex.quote(str(d / 'baresip.log'))} 2>&1) &
PEER=$!
for i in $(seq 1 100); do grep -q "REGISTER sip:201@" {blog} && break; sleep 0.1; done
{shlex.quote(PY)} manage.py dial 201 --campaign 1 > {shlex.quote(str(tmp_path / 'dial.log'))} 2>&1
echo "DIAL_RC=$?"
wait $PEER
""" + STOP_BRIDGE
    out = run_in_netns(script, env, timeout=90)
    log = (tmp_path / "dial.log").read_text()
    assert "DIAL_RC=0" in out.stdout, log + (tmp_path / "bridge.log").read_text()[-2000:]
    assert "-> INVITE sip:201-" in log and "to 127.0.0.1:5062" in log and "outcome: answered" in log
    rows = json.loads(manage_shell(env, "import json; from telephony.models import Call; print(json.dumps(list("
                                        "Call.objects.values('direction','outcome','dialed','end_reason'))))"))
    assert len(rows) == 1 and rows[0]["end_reason"] in ("agent", "bye")  # whoever hung up first
    assert (rows[0]["direction"], rows[0]["outcome"], rows[0]["dialed"]) == ("outbound", "answered", "201")
    greeting = next((Path(env["MEDIA_ROOT"]) / "greetings").glob("*.wav"))
    ref, _ = read_wav(greeting)
    got, _ = read_wav(sorted((d / "rec").glob("dump-*-dec.wav"))[-1])
    lag, _ = best_lag_corr(ref[:16000], got, 8000 * 3)
    assert windowed_corr(ref, got, lag) > 0.85, "baresip heard the campaign greeting"
