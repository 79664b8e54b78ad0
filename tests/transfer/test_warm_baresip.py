"""Warm transfer between two real softphones, all inside a private network namespace: baresip #1
calls the bridge (extension 100) speaking a known WAV; baresip #2 is registered to the bridge as
extension 200 (the transfer target, found through the registrar). The bridge's test agent
(``bridge_main --agent warm``) asks for a warm transfer to 200 half a second into the call.

- Answered: the target hears the summary WAV first, then the caller's voice, and the caller hears
  the target's voice (each found by cross-correlation in what the other baresip recorded); the
  caller's bridge recording goes on with the target's voice; the target's leg ends "transferred".
- Not answered (the target rings past the ring timeout): CANCEL, the caller hears the agent's
  "they did not answer" clip, and the call goes on until the caller hangs up ("bye").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.sip.peers import bridge_env, prepare_db, read_wav, require

from .legs import RATE, find, heard, heard_it, relayed, scenario

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path, TRANSFER_TARGET="200", TRANSFER_RING_S="2")
    prepare_db(e)
    return e


def test_warm_transfer_answered_target_hears_summary_then_caller_and_target_are_joined(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    r = scenario(tmp_path, env, answer=True, caller_s=18, target_s=24)
    log = r["log"]
    assert "warm transfer: sip:200" in log and "test agent: summary played to the target" in log, log[-3000:]
    assert "bridged to sip:200" in log, log[-3000:]  # (the agent that asked is replaced: it logs nothing)
    assert "REFER" not in log.split("warm transfer:")[1]  # warm: the caller's phone is never REFERred
    at_target = heard(r["target"])
    summary, _ = read_wav(Path(env["WARM_SUMMARY_WAV"]))
    lag_s, corr_s = find(summary, at_target)
    assert corr_s > 0.9, f"the target heard the summary (corr {corr_s:.3f})"
    caller_ref, _ = read_wav(r["caller_wav"])
    late = caller_ref[7 * RATE:13 * RATE]  # the caller's words well after the join
    lag_c, matches = relayed(late, at_target)
    assert heard_it(matches), f"the target heard the caller after the join: {matches}"
    assert lag_c > lag_s + len(summary) - RATE // 10, "the caller was joined only after the summary"
    on_hold = caller_ref[1 * RATE:3 * RATE]  # what the caller said while the target was being briefed
    assert max(relayed(on_hold, at_target)[1]) < 0.5, "the caller on hold was not relayed during the summary"
    at_caller = heard(r["caller"])
    target_ref, _ = read_wav(r["target_wav"])
    matches = relayed(target_ref[6 * RATE:12 * RATE], at_caller)[1]
    assert heard_it(matches), f"the caller heard the target: {matches}"
    assert max(relayed(target_ref[: 3 * RATE], at_caller)[1]) < 0.5, "nor heard the target before the join"
    caller_row, leg = r["rows"]
    assert caller_row["direction"] == "inbound" and caller_row["end_reason"] == "bye", r["rows"]
    assert (leg["direction"], leg["outcome"], leg["dialed"], leg["end_reason"]) == (
        "outbound", "answered", "200", "transferred"), r["rows"]
    recorded = read_wav(Path(env["MEDIA_ROOT"]) / caller_row["recording"], 1)[0]  # what the bridge sent the caller
    matches = relayed(target_ref[6 * RATE:12 * RATE], recorded)[1]  # the same audio, timed by our clock
    assert max(matches) > 0.95 and float(np.median(matches)) > 0.5, f"the recording went on: {matches}"


def test_warm_transfer_unanswered_agent_comes_back_and_the_call_goes_on(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    r = scenario(tmp_path, env, answer=False, caller_s=14, target_s=12)
    log = r["log"]
    assert "test agent: warm transfer failed (no_answer)" in log, log[-3000:]
    assert "(no_answer, 487)" in log, log[-3000:]  # our CANCEL at the ring timeout, answered 487
    assert "test agent: told the caller, still on the call" in log, log[-3000:]
    target_log = (r["target"] / "baresip.log").read_text(errors="replace")
    assert "Incoming call" in target_log, target_log[-2000:]  # it rang
    back, _ = read_wav(Path(env["WARM_BACK_WAV"]))
    corr = find(back, heard(r["caller"]))[1]
    assert corr > 0.9, f"the caller heard that the target did not answer (corr {corr:.3f})"
    caller_row, leg = r["rows"]
    assert caller_row["end_reason"] == "bye", r["rows"]  # the call went on until the caller hung up
    assert (leg["direction"], leg["outcome"], leg["dialed"]) == ("outbound", "no_answer", "200"), r["rows"]
