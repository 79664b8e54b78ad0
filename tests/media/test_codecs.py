import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler, resample

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


def test_resampler_frame_by_frame_equals_one_shot():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(8000) * 3000).astype(np.int16)
    for a, b in ((8000, 16000), (16000, 8000), (22050, 8000), (24000, 8000)):
        sig = x if a == 8000 else resample(x, 8000, a)
        whole = Resampler(a, b).process(sig)
        r = Resampler(a, b)
        step = a // 50
        parts = np.concatenate([r.process(sig[i:i + step]) for i in range(0, len(sig), step)])
        assert np.array_equal(whole, parts)
        assert abs(len(whole) - len(sig) * b / a) <= 2


def test_tone_survives_8k_16k_8k():
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
    back = Resampler(16000, 8000).process(Resampler(8000, 16000).process(tone))
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
