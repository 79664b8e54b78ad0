import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aioptions.codecs import g711
from aioptions.codecs import resample as resample_mod
from aioptions.codecs.resample import FilterResampler, Resampler, SoxrResampler, resample

# ITU-T G.711 table values (decoder output for selected codes, 16-bit scale)
ULAW_POINTS = {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x0F: -16764, 0x70: -120, 0xF0: 120, 0x3F: -1980}
ALAW_POINTS = {0x55: -8, 0xD5: 8, 0x2A: -32256, 0xAA: 32256, 0x5A: -248, 0x00: -5504}


def test_decode_tables_match_itu_points():
    for code, value in ULAW_POINTS.items():
        assert int(g711.ULAW_DECODE[code]) == value, hex(code)
    for code, value in ALAW_POINTS.items():
        assert int(g711.ALAW_DECODE[code]) == value, hex(code)


def test_encode_decode_are_inverse_on_codes():
    codes = bytes(range(256))
    assert g711.ulaw_encode(g711.ulaw_decode(codes)) == bytes(c if c != 0x7F else 0xFF for c in codes)
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    assert g711.ulaw_to_alaw(g711.alaw_to_ulaw(codes)) != b""


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400))
@settings(max_examples=200, deadline=None)
def test_roundtrip_error_is_within_the_segment_step(samples):
    x = np.array(samples, dtype=np.int16)
    for enc, dec in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        err = np.abs(y - x.astype(np.int32))
        # G.711 quantisation: error at most half a step, the step doubling per segment (~|x|/16)
        assert np.all(err <= np.maximum(64, np.abs(x.astype(np.int32)) // 15 + 16))


def test_silence_bytes_decode_to_near_zero():
    assert abs(int(g711.ulaw_decode(bytes([g711.SILENCE_BYTE["PCMU"]]))[0])) == 0
    assert abs(int(g711.alaw_decode(bytes([g711.SILENCE_BYTE["PCMA"]]))[0])) <= 8


def test_filter_resampler_frame_by_frame_equals_one_shot():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(8000) * 3000).astype(np.int16)
    for a, b in ((8000, 16000), (16000, 8000), (22050, 8000), (24000, 8000)):
        sig = x if a == 8000 else resample(x, 8000, a)
        whole = FilterResampler(a, b).process(sig)
        r = FilterResampler(a, b)
        step = a // 50
        parts = np.concatenate([r.process(sig[i:i + step]) for i in range(0, len(sig), step)])
        assert np.array_equal(whole, parts)
        assert abs(len(whole) - len(sig) * b / a) <= 2


def test_tone_survives_8k_16k_8k():
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
    back = FilterResampler(16000, 8000).process(FilterResampler(8000, 16000).process(tone))
    best = max(np.corrcoef(tone[400:7000], back[400 + lag:7000 + lag])[0, 1] for lag in range(0, 40))
    assert best > 0.99
    # no click at frame edges: the first difference stays bounded like the tone's own slope
    assert np.max(np.abs(np.diff(back[200:].astype(np.int32)))) < 12000 * 2 * np.pi * 1000 / 8000 * 1.2


@given(st.binary(max_size=401))
@settings(max_examples=200, deadline=None)
def test_pair_table_decode_is_bit_exact_with_the_byte_table(data):
    """The fast decode (two codes per lookup) equals the 256-entry table, odd lengths included."""
    codes = np.frombuffer(data, dtype=np.uint8)
    assert np.array_equal(g711.ulaw_decode(data), g711.ULAW_DECODE[codes])
    assert np.array_equal(g711.alaw_decode(data), g711.ALAW_DECODE[codes])
    assert g711.ulaw_decode(data).dtype == np.int16


def test_c_decode_is_bit_exact_with_the_numpy_tables():
    """Whichever path decodes (audioop's C loop or the pair table), every code maps as the ITU table."""
    data = bytes(range(256)) * 3 + b"\x01"
    codes = np.frombuffer(data, dtype=np.uint8)
    for fast, slow, table in ((g711.ulaw_decode, g711._numpy_ulaw, g711.ULAW_DECODE),
                              (g711.alaw_decode, g711._numpy_alaw, g711.ALAW_DECODE)):
        assert np.array_equal(fast(data), table[codes])
        assert np.array_equal(slow(data), table[codes])
        assert fast(b"").shape == (0,) and fast(data).dtype == np.int16


def _tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def _peak_hz_and_rms(x: np.ndarray, rate: int) -> tuple[float, float]:
    y = x[len(x) // 8: -len(x) // 8].astype(np.float64)  # skip the edges
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spectrum) * rate / len(y)), float(np.sqrt(np.mean(y ** 2)))


def test_soxr_does_one_shot_resampling_and_the_filter_streams():
    assert resample_mod.soxr is not None, "soxr is in requirements.txt"
    assert Resampler is FilterResampler  # live streams answer every frame at once
    x = _tone(1000.0, 8000)
    assert np.array_equal(resample(x, 8000, 16000), resample_mod.soxr.resample(x, 8000, 16000))


def test_soxr_tone_keeps_frequency_amplitude_and_length():
    for a, b, freq in ((8000, 16000, 1000.0), (16000, 8000, 1000.0), (8000, 16000, 3000.0), (22050, 8000, 440.0)):
        x = _tone(freq, a)
        y = resample(x, a, b)
        assert len(y) == len(x) * b // a, (a, b)
        hz_in, rms_in = _peak_hz_and_rms(x, a)
        hz_out, rms_out = _peak_hz_and_rms(y, b)
        assert abs(hz_out - freq) <= 2.0 and abs(hz_in - freq) <= 2.0, (a, b, hz_out)
        assert abs(rms_out / rms_in - 1) < 0.01, (a, b, rms_out / rms_in)


def test_soxr_cuts_what_the_lower_rate_cannot_carry():
    """16 -> 8 kHz: a 6 kHz tone (above the new Nyquist) must not fold back as a 2 kHz one."""
    y = resample(_tone(6000.0, 16000), 16000, 8000)
    assert np.sqrt(np.mean(y[1000:-1000].astype(np.float64) ** 2)) < 10000 * 0.707 * 0.01


def test_soxr_in_20ms_frames_equals_one_shot():
    rng = np.random.default_rng(5)
    noise = (rng.standard_normal(16000) * 3000).astype(np.int16)
    for a, b in ((8000, 16000), (16000, 8000), (24000, 8000)):
        sig = noise[: 2 * a]
        one = resample(sig, a, b)
        r = SoxrResampler(a, b)
        step = a // 50
        parts = [r.process(sig[i:i + step]) for i in range(0, len(sig), step)]
        streamed = np.concatenate(parts + [r.flush()])
        assert len(streamed) == len(one) == len(sig) * b // a
        assert int(np.max(np.abs(streamed.astype(np.int32) - one.astype(np.int32)))) <= 2
        assert r.flush().size == 0 and r.process(sig[:step]).size == 0  # finished after flush


def test_soxr_frames_of_a_tone_do_not_click():
    x = _tone(1000.0, 8000, amp=12000.0)
    r = SoxrResampler(8000, 16000)
    y = np.concatenate([r.process(x[i:i + 160]) for i in range(0, len(x), 160)] + [r.flush()])
    slope = 12000 * 2 * np.pi * 1000 / 16000  # the tone's own largest step at 16 kHz
    assert np.max(np.abs(np.diff(y[400:-400].astype(np.int32)))) < slope * 1.1


def test_filter_resampler_answers_every_frame_at_once():
    """The live-stream resampler holds nothing back: each 20 ms frame comes out as 20 ms."""
    r = FilterResampler(16000, 8000)
    assert [len(r.process(np.zeros(320, np.int16))) for _ in range(5)] == [160] * 5
