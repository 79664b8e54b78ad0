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

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.sip.peers import (
    PY,
    STOP_BRIDGE,
    baresip_dir,
    bridge_env,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
    speech_wav,
    windowed_corr,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]
RATE = 8000
CALLS = ("import json; from telephony.models import Call; print(json.dumps(list(Call.objects.order_by('id').values("
         "'direction','outcome','end_reason','dialed','recording')), default=str))")
CALLER_TEXT = ("Hello, I am calling about my dentist appointment on Monday morning. I would like to move it to "
               "Tuesday afternoon if that is possible, or Wednesday at the latest. My name is Dana Smith and my "
               "number is five five five, one two three four. Thank you very much for your help today.")
TARGET_TEXT = ("Good afternoon, this is the front desk speaking. Tuesday afternoon is fine, we have a free slot "
               "at three o'clock and another one at half past four. Which of the two would suit you better? "
               "We will send you a text message to confirm the new time.")
SUMMARY_TEXT = "Call transfer. The caller wants to move a Monday appointment to Tuesday."
BACK_TEXT = "Sorry, they did not answer. I am back with you."


def peer(tmp: Path, name: str, wav: Path, *, port: int, rtp: str, user: str, register: str | None = None,
         domain: str = "127.0.0.1") -> Path:
    """A baresip config of its own (SIP port, RTP range, folder), so two can run side by side."""
    d = baresip_dir(tmp / name, wav, codecs="PCMU", user=user, register=register, domain=domain)
    cfg = (d / "config").read_text().replace("sip_listen 127.0.0.1:5062", f"sip_listen 127.0.0.1:{port}")
    (d / "config").write_text(cfg.replace("rtp_ports 30000-30100", f"rtp_ports {rtp}"))
    return d


def scenario(tmp: Path, env: dict, *, answer: bool, caller_s: int, target_s: int) -> dict:
    caller_wav = speech_wav(tmp, CALLER_TEXT, "caller.wav", pad_s=2)
    target_wav = speech_wav(tmp, TARGET_TEXT, "target.wav", pad_s=6)
    env.update(WARM_SUMMARY_WAV=str(speech_wav(tmp, SUMMARY_TEXT, "summary.wav")),
               WARM_BACK_WAV=str(speech_wav(tmp, BACK_TEXT, "back.wav")))
    target = peer(tmp, "target", target_wav, port=5064, rtp="31000-31100", user="200", domain="127.0.0.1:5060",
                  register="regint=60" + (";answermode=auto" if answer else ""))
    caller = peer(tmp, "caller", caller_wav, port=5062, rtp="30000-30100", user="caller")
    q = shlex.quote
    blog = q(str(tmp / "bridge.log"))
    script = f"""
{q(PY)} -m tests.transfer.bridge_main --agent warm --port 5060 --rtp-ports 20000-20998 > {blog} 2>&1 &
BRIDGE=$!
for i in $(seq 1 100); do grep -q "listening on udp" {blog} 2>/dev/null && break; sleep 0.1; done
(timeout {target_s + 15} baresip -f {q(str(target))} -t {target_s} < /dev/null \
  > {q(str(target / 'baresip.log'))} 2>&1) &
TARGET=$!
for i in $(seq 1 100); do grep -q "REGISTER sip:200@" {blog} && break; sleep 0.1; done
timeout {caller_s + 15} baresip -f {q(str(caller))} -e {q('/dial sip:100@127.0.0.1:5060')} -t {caller_s} \
  < /dev/null > {q(str(caller / 'baresip.log'))} 2>&1
wait $TARGET
""" + STOP_BRIDGE
    out = run_in_netns(script, env, timeout=120)
    files = {"caller": caller, "target": target, "caller_wav": caller_wav, "target_wav": target_wav}
    files["log"] = (tmp / "bridge.log").read_text()
    files["rows"] = json.loads(manage_shell(env, CALLS))
    files["out"] = out.stdout + out.stderr
    return files


def heard(d: Path) -> np.ndarray:
    """What a baresip received, from its sndfile dump (the last call's decoder side)."""
    dec = sorted((d / "rec").glob("dump-*-dec.wav"))
    assert dec, f"{d.parent.name} recorded nothing: " + (d / "baresip.log").read_text(errors="replace")[-1500:]
    return read_wav(dec[-1])[0]


def find(ref: np.ndarray, got: np.ndarray) -> tuple[int, float]:
    """Where ``ref`` is in ``got`` (lag in samples, by FFT normalised cross-correlation: a full-length
    search that takes milliseconds) and how well it matches there (peers.windowed_corr)."""
    if len(got) < len(ref):
        return 0, 0.0
    nfft = 1 << (len(got) + len(ref)).bit_length()
    xc = np.fft.irfft(np.fft.rfft(got, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)[: len(got) - len(ref) + 1]
    power = np.concatenate(([0.0], np.cumsum(got * got)))
    local = np.sqrt(np.maximum(power[len(ref):] - power[: len(got) - len(ref) + 1], 0.0))
    score = np.where(local > 1e-3 * local.max(), xc / (local * np.linalg.norm(ref) + 1e-9), 0.0)  # no silence
    lag = int(np.argmax(score))
    return lag, windowed_corr(ref, got, lag)


def seconds(ref: np.ndarray, got: np.ndarray) -> list[tuple[int, float]]:
    """``find`` one second of ``ref`` at a time: [(lag, match)]. The bridge's media clock skips ticks
    when the machine stalls (telephony/rtp/clock.py: measured on this 2-core box under a load of 7),
    and each skipped 20 ms shifts what follows, so every second is located on its own."""
    return [find(ref[i:i + RATE], got) for i in range(0, len(ref) - RATE + 1, RATE)]


def relayed(ref: np.ndarray, got: np.ndarray) -> tuple[int, list[float]]:
    """Is ``ref`` in ``got``: (lag of its first well-matched second, every second's match). Unloaded,
    every second matches at 0.9999; the negative controls (other speech, silence) stay below 0.5."""
    found = seconds(ref, got)
    good = [lag - i * RATE for i, (lag, c) in enumerate(found) if c > 0.95]
    return (good[0] if good else -1), [round(c, 3) for _, c in found]


def heard_it(matches: list[float]) -> bool:
    """Heard: a third of the seconds match (> 0.95) and the median is well above the controls."""
    return sum(c > 0.95 for c in matches) * 3 >= len(matches) and float(np.median(matches)) > 0.5


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
