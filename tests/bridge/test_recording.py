"""Recordings survive a killed process: the WAV header covers the audio written so far."""

import os
import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np

from aioptions.codecs import g711
from telephony.media.recording import StereoRecorder, repair_wav, wav_header

ROOT = Path(__file__).resolve().parents[2]
FRAME = 160  # 20 ms of G.711


def tone_frames(n: int, codec: str = "PCMU") -> list[bytes]:
    t = np.arange(n * FRAME) / 8000.0
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    data = g711.encode(codec, pcm)
    return [data[i * FRAME:(i + 1) * FRAME] for i in range(n)]


def read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        n = w.getnframes()
        return n, np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, 2)


def test_unclosed_recording_is_playable_with_the_flushed_batches(tmp_path):
    frames = tone_frames(250)  # 5 s: two 2-second batches reach the file, 1 s still buffered
    rec = StereoRecorder(tmp_path / "r.wav", "PCMU")
    silence = g711.encode("PCMU", np.zeros(FRAME, dtype="<i2"))
    for f in frames:
        rec.write(f, silence)
    # no close(): what a reader (or the next bridge after SIGKILL) finds on disk
    n, audio = read(tmp_path / "r.wav")
    assert n == 2 * 16000 == rec.frames_written
    expected = g711.decode("PCMU", b"".join(frames))[:n]
    assert np.array_equal(audio[:, 0], expected)  # left = caller
    assert not audio[:, 1].any()  # right = agent (silence)
    rec.close()
    assert read(tmp_path / "r.wav")[0] == 250 * FRAME  # close() adds the buffered tail


def test_sigkilled_writer_leaves_a_readable_wav(tmp_path):
    """A real process killed with SIGKILL mid-recording (it kills itself: no timing involved)."""
    path = tmp_path / "killed.wav"
    code = textwrap.dedent(f"""
        import os, signal
        from telephony.media.recording import StereoRecorder
        rec = StereoRecorder({str(path)!r}, "PCMA")
        for _ in range(300):  # 6 s: three full batches written
            rec.write(b"\\xd5" * 160, b"\\x55" * 160)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    n, audio = read(path)
    assert n == 3 * 16000
    assert repair_wav(path) == n  # nothing to repair: the header was already right
    assert os.path.getsize(path) == 44 + n * 4


def test_repair_fixes_a_header_cut_off_by_a_crash(tmp_path):
    """A file whose header claims no data (what the old recorder left) and a torn last frame."""
    path = tmp_path / "old.wav"
    body = np.arange(1000 * 2, dtype="<i2").tobytes()
    path.write_bytes(wav_header(0) + body + b"\x01\x02\x03")  # 3 bytes of a half-written frame
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 0
    assert repair_wav(path) == 1000
    n, audio = read(path)
    assert n == 1000 and audio.tobytes() == body
    assert repair_wav(path) == 1000  # idempotent


def test_repair_leaves_foreign_files_alone(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    assert repair_wav(junk) is None and junk.read_bytes() == b"not a wav at all"
    assert repair_wav(tmp_path / "missing.wav") is None
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert repair_wav(empty) is None


async def test_the_bridge_writes_recordings_on_a_writer_thread_not_the_event_loop(tmp_path, monkeypatch):
    import threading

    from telephony.media import recording

    loop_thread = threading.get_ident()
    writers: set[int] = set()
    real = recording.StereoRecorder._write_batch

    def spy(self, caller, agent):
        writers.add(threading.get_ident())
        real(self, caller, agent)

    monkeypatch.setattr(recording.StereoRecorder, "_write_batch", spy)
    rec = StereoRecorder(tmp_path / "w.wav", "PCMU", writer=recording.shared_writer())
    frames = tone_frames(150)
    silence = g711.encode("PCMU", np.zeros(FRAME, dtype="<i2"))
    for f in frames:
        rec.write(f, silence)
    assert await rec.aclose() == tmp_path / "w.wav"
    assert writers and loop_thread not in writers
    n, audio = read(tmp_path / "w.wav")
    assert n == 150 * FRAME and np.array_equal(audio[:, 0], g711.decode("PCMU", b"".join(frames)))
