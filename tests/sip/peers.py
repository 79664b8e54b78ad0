"""Real SIP peers (sipp, baresip) against a real `run_sip_bridge`, all inside a private network
namespace (`unshare -n`), so every packet stays on that namespace's 127.0.0.1.

The bridge runs with its own SQLite database in the test's temp dir (bootstrap: demo campaign on
extension 100); tests read its records back through `manage.py shell`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = f"missing {', '.join(missing)} (the test command installs them: bash .ci/test)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -n (a private network namespace)")


def bridge_env(tmp: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(TALKY_VAR_DIR=str(tmp / "var"), MEDIA_ROOT=str(tmp / "media"), PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE="talky.settings", TALKY_ADMIN_PASSWORD="x-test-pw")
    env.update(extra)
    return env


def prepare_db(env: dict) -> None:
    for args in (["migrate", "--noinput", "-v0"], ["bootstrap", "--quiet"]):
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=120)


def manage_shell(env: dict, code: str) -> str:
    out = subprocess.run([PY, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def run_in_netns(script: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a shell script in a fresh network namespace that has only `lo`."""
    full = "set -u\nip link set lo up\n" + script
    return subprocess.run(["unshare", "-n", "bash", "-c", full], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)


def bridge_script(tmp: Path, *, agent: str, port: int = 5060, extra: str = "", log: str = "bridge.log") -> str:
    """Start the bridge in the background and wait until its port is bound."""
    cmd = f"{shlex.quote(PY)} manage.py run_sip_bridge --agent {agent} --port {port} --rtp-ports 20000-20998 {extra}"
    return f"""
{cmd} > {shlex.quote(str(tmp / log))} 2>&1 &
BRIDGE=$!
for i in $(seq 1 100); do
  grep -q "listening on udp" {shlex.quote(str(tmp / log))} 2>/dev/null && break
  sleep 0.1
done
"""


STOP_BRIDGE = """
kill -TERM $BRIDGE 2>/dev/null
for i in $(seq 1 100); do kill -0 $BRIDGE 2>/dev/null || break; sleep 0.1; done
kill -KILL $BRIDGE 2>/dev/null || true
wait $BRIDGE 2>/dev/null
"""


def speech_wav(tmp: Path, text: str, name: str = "tx8k.wav", pad_s: float = 0.0) -> Path:
    """espeak-ng speech as 8 kHz mono s16 (what baresip's aufile needs), optional trailing silence."""
    raw = tmp / f"{name}.raw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, timeout=30)
    out = tmp / name
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)]
                   + (["pad", "0", str(pad_s)] if pad_s else []), check=True, timeout=30)
    return out


def silence_wav(tmp: Path, seconds: float, name: str = "silence.wav") -> Path:
    """8 kHz mono s16 silence for a peer that should only listen (baresip ends the call at its EOF)."""
    out = tmp / name
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out), "trim", "0",
                    str(seconds)], check=True, timeout=30)
    return out


def read_wav(path: Path, channel: int | None = None) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        ch, rate = w.getnchannels(), w.getframerate()
    if ch > 1:
        data = data.reshape(-1, ch)[:, channel or 0]
    return data, rate


def best_lag_corr(ref: np.ndarray, got: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples, got behind ref) with the highest normalised correlation."""
    best = (0, -1.0)
    n = len(ref)
    for lag in range(0, max_lag, 8):
        seg = got[lag:lag + n]
        if len(seg) < n // 2:
            break
        r = ref[: len(seg)]
        den = np.linalg.norm(r) * np.linalg.norm(seg)
        c = float(np.dot(r, seg) / den) if den else 0.0
        if c > best[1]:
            best = (lag, c)
    lag0 = best[0]
    for lag in range(max(0, lag0 - 8), lag0 + 8):
        seg = got[lag:lag + n]
        r = ref[: len(seg)]
        den = np.linalg.norm(r) * np.linalg.norm(seg)
        c = float(np.dot(r, seg) / den) if den else 0.0
        if c > best[1]:
            best = (lag, c)
    return best


def windowed_corr(ref: np.ndarray, got: np.ndarray, lag: int, rate: int = 8000) -> float:
    """Median correlation of 500 ms windows of speech, each re-aligned by up to 100 ms."""
    win, slack = rate // 2, rate // 10
    scores = []
    for start in range(0, len(ref) - win, win):
        r = ref[start:start + win]
        if np.abs(r).mean() < 200:  # skip near-silent windows
            continue
        best = -1.0
        for d in range(-slack, slack, 4):
            s = lag + start + d
            if s < 0 or s + win > len(got):
                continue
            g = got[s:s + win]
            den = np.linalg.norm(r) * np.linalg.norm(g)
            if den:
                best = max(best, float(np.dot(r, g) / den))
        scores.append(best)
    return float(np.median(scores)) if scores else 0.0


def baresip_dir(tmp: Path, wav: Path, codecs: str = "PCMU,PCMA", user: str = "tester",
                register: str | None = None, ip: str = "127.0.0.1", domain: str = "127.0.0.1") -> Path:
    d = tmp / "baresip"
    (d / "rec").mkdir(parents=True, exist_ok=True)
    (d / "config").write_text(f"""poll_method epoll
sip_listen {ip}:5062
call_local_timeout 30
call_max_calls 4
audio_player aubridge,nul
audio_source aufile,{wav}
audio_alert aubridge,nul
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
audio_buffer 20-160
rtp_ports 30000-30100
rtcp_mux no
jitter_buffer_delay 1-10
rtp_stats yes
net_interface {ip}
snd_path {d / 'rec'}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_tmp account.so
module_app menu.so
""")
    reg = register or "regint=0"
    (d / "accounts").write_text(f"<sip:{user}@{domain}>;{reg};audio_codecs={codecs}\n")
    return d


def baresip_cmd(d: Path, dial: str, seconds: int, log: str = "baresip.log") -> str:
    return (f"timeout {seconds + 15} baresip -f {shlex.quote(str(d))} -e {shlex.quote('/dial ' + dial)} "
            f"-t {seconds} < /dev/null > {shlex.quote(str(d / log))} 2>&1\n")
