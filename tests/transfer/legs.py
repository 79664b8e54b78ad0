"""Two baresip softphones around a running bridge, for the transfer interop tests: the caller
(dials extension 100, sends a known speech WAV) and the target (registered as extension 200, sends
another), each with its own SIP port, RTP range and recordings, all in one private netns; and the
audio checks (where one WAV is found in what the other side recorded, a second at a time)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from tests.sip.peers import (
    PY,
    STOP_BRIDGE,
    baresip_dir,
    manage_shell,
    read_wav,
    run_in_netns,
    speech_wav,
    windowed_corr,
)

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


def scenario(tmp: Path, env: dict, *, answer: bool, caller_s: int, target_s: int, agent: str = "warm") -> dict:
    """Bridge (``bridge_main --agent``), target baresip registered as 200, caller baresip dialling 100;
    all in one private netns. Returns both baresip folders, the WAVs they sent, the log and Call rows."""
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
{q(PY)} -m tests.transfer.bridge_main --agent {agent} --port 5060 --rtp-ports 20000-20998 > {blog} 2>&1 &
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
