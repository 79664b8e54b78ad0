"""Blind transfer with a real softphone as the transferee, all inside a private network namespace:
baresip #1 calls the bridge (extension 100); the bridge's test agent (``bridge_main --agent
transfer``) transfers it to extension 200, where baresip #2 is registered. baresip accepts the
REFER (202), calls the target's registered contact itself and reports the outcome in NOTIFY
``message/sipfrag``; on the final 200 the bridge hangs up and the Call row ends "transferred". The
two phones then talk directly (each hears the other's WAV: cross-correlation), without the bridge.
"""

from __future__ import annotations

import pytest

from tests.sip.peers import bridge_env, prepare_db, read_wav, require

from .legs import RATE, heard, heard_it, relayed, scenario

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
