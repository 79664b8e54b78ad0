"""manage.py test_flux against the fake Flux: a verdict and exit 0, or one clear line and a non-zero exit."""

import io
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from aioptions.fakes.flux_server import FakeFluxServer
from aioptions.fakes.threaded import in_thread

ROOT = Path(__file__).resolve().parents[2]


def run(settings, key: str, url: str, *args: str) -> tuple[int, str, str]:
    settings.DEEPGRAM_API_KEY, settings.DEEPGRAM_URL = key, url
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("test_flux", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_fast_run_against_the_energy_fake_prints_events_and_a_verdict(settings):
    with in_thread(FakeFluxServer(energy=True, transcript="book an appointment", api_key="good")) as srv:
        code, out, err = run(settings, "good", srv.url, "--fast")
    assert code == 0, out + err
    assert out.startswith(f"Connected to {srv.url}") and "StartOfTurn (turn 0" in out
    assert "Update: book an appointment" in out
    assert "EndOfTurn: 'book an appointment' (trigger model" in out and "after the audio ended" in out
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith(f"OK: Flux works at {srv.url}: transcript 'book an appointment'")
    )
    conn = srv.connections[0]
    assert conn.query["encoding"] == "mulaw" and conn.query["sample_rate"] == "8000"
    assert conn.closed_by_client and set(conn.frames[:-1]) == {640}


def tone_wav(path: Path, rate: int = 8000) -> Path:
    """0.3 s silence, 0.5 s of a loud tone, 0.6 s silence: one 'utterance' for the energy fake."""
    t = np.arange(int(0.5 * rate)) / rate
    pcm = np.concatenate(
        [np.zeros(int(0.3 * rate)), 8000 * np.sin(2 * np.pi * 440 * t), np.zeros(int(0.6 * rate))]
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate), w.writeframes(pcm.astype("<i2").tobytes())
    return path


def test_realtime_linear16_16k_reports_latency_from_the_speech_end(settings, tmp_path):
    wav = str(tone_wav(tmp_path / "tone.wav"))
    with in_thread(FakeFluxServer(energy=True, transcript="hello", eot_delay_ms=100)) as srv:
        code, out, err = run(
            settings, "k", srv.url, "--encoding", "linear16", "--sample-rate", "16000", "--wav", wav
        )
    assert code == 0, out + err
    assert srv.connections[0].query["sample_rate"] == "16000" and set(srv.connections[0].frames[:-1]) == {
        2560
    }
    eot = next(line for line in out.splitlines() if "EndOfTurn" in line)
    ms = int(eot.split("trigger model, ")[1].split(" ms after the speech")[0])
    assert 400 <= ms < 1200  # the fake's 350 ms of silence detection + 100 ms EOT delay, in real time
    assert "speech ended at 0.80 s" in eot or "speech ended at 0.88 s" in eot  # 80 ms frames
    assert "real time" in out.splitlines()[0]


def test_no_key(settings):
    code, _, err = run(settings, "", "ws://127.0.0.1:9/v2/listen")
    assert code == 2 and one_line(err) == (
        "FAIL: DEEPGRAM_API_KEY is not set (export it, or put it in the environment of this process)"
    )


def test_bad_key(settings):
    with in_thread(FakeFluxServer(api_key="right")) as srv:
        code, _, err = run(settings, "wrong", srv.url, "--fast")
    assert code == 3 and one_line(err).startswith("FAIL: the key was refused by") and "HTTP 401" in err
    assert "wrong" not in err


def test_nothing_listening(settings):
    code, _, err = run(settings, "k", "ws://127.0.0.1:9/v2/listen", "--fast")
    assert (
        code == 4 and one_line(err).startswith("FAIL: Deepgram is unreachable") and "ConnectionRefused" in err
    )


def test_server_error_mid_stream_and_at_handshake(settings):
    with in_thread(FakeFluxServer(error_after_s=0.3)) as srv:
        code, _, err = run(settings, "k", srv.url, "--fast")
    assert code == 5 and one_line(err).startswith(
        "FAIL: Deepgram server error: Flux error INTERNAL_SERVER_ERROR"
    )
    with in_thread(FakeFluxServer(handshake_status=503)) as srv:
        code, _, err = run(settings, "k", srv.url, "--fast")
    assert code == 5 and "HTTP 503" in one_line(err)
    with in_thread(FakeFluxServer(handshake_status=400)) as srv:
        code, _, err = run(settings, "k", srv.url, "--fast")
    assert code == 6 and "is Flux enabled" in one_line(err)


def test_no_turn_and_bad_input(settings, tmp_path):
    with in_thread(FakeFluxServer()) as srv:  # no script: Flux hears nothing
        code, _, err = run(settings, "k", srv.url, "--fast", "--timeout", "0.3")
    assert code == 5 and "no EndOfTurn arrived" in one_line(err)
    code, _, err = run(settings, "k", "ws://127.0.0.1:9/v2/listen", "--wav", str(tmp_path / "missing.wav"))
    assert code == 6 and one_line(err).startswith("FAIL: cannot read")
    bad = tmp_path / "8bit.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000), w.writeframes(b"\x80" * 800)
    code, _, err = run(settings, "k", "ws://127.0.0.1:9/v2/listen", "--wav", str(bad))
    assert code == 6 and "16-bit" in one_line(err)
    code, _, err = run(settings, "k", "ws://127.0.0.1:9/v2/listen", "--sample-rate", "11025")
    assert code == 6 and "11025" in one_line(err)


def test_bundled_utterance_is_small_8k_mono_speech():
    with wave.open(str(ROOT / "aioptions/assets/utterance_8k.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert 1.5 < w.getnframes() / 8000 < 6.0


@pytest.mark.slow
def test_the_cli_exit_codes_without_traceback():
    """The real CLI path (argv, Django setup, sys.exit) rather than call_command."""
    with in_thread(FakeFluxServer(energy=True, transcript="book", api_key="good")) as srv:
        runs = {
            key: subprocess.run(
                [sys.executable, "manage.py", "test_flux", "--fast"],
                cwd=ROOT,
                timeout=60,
                capture_output=True,
                text=True,
                env={**os.environ, "DEEPGRAM_API_KEY": key, "DEEPGRAM_URL": srv.url},
            )
            for key in ("good", "nope")
        }
    assert runs["good"].returncode == 0 and "OK: Flux works" in runs["good"].stdout, runs["good"].stderr
    assert runs["nope"].returncode == 3 and one_line(runs["nope"].stderr).startswith(
        "FAIL: the key was refused"
    )
