"""Hypothesis strategies for hostile JSON: what an attacker sends, not what a client means to.

Every value here is invalid wherever the tests put it (no catalog id, no in-range number, no
empty string that would mean "clear"), so any 2xx answer is a bug, and so is any 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

from aioptions import catalog


@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim (NaN, 1e999, a 401-digit integer, 50,000 brackets)."""

    text: str


def dumps(value) -> str:
    """JSON text with Raw tokens inlined; strings escaped the way a client would (\\u0000, \\ud800)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def _floatish(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_KNOWN = {v.id for v in catalog.voices(include_offline=True)} | {m.id for m in catalog.llm_models()} | {
    p.id for kind in ("llm", "tts", "stt") for p in catalog.providers(kind)} | {"off"}

huge_ints = st.one_of(
    st.integers(min_value=10**15, max_value=10**40),
    st.integers(max_value=-(10**15), min_value=-(10**40)),
    st.integers(min_value=300, max_value=4000).map(lambda n: Raw("9" * n)),  # the 401-digit case
)
bad_numbers = st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-1e400")])
deep = st.integers(min_value=9, max_value=60_000).flatmap(
    lambda n: st.sampled_from([Raw("[" * n + "]" * n), Raw('{"a":' * n + "1" + "}" * n)]))
control_strings = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=20),
    st.sampled_from(["\x00", "\n", "\r", "\x1b", "\x7f", "\u2028", "\x00\x00"]), st.text(max_size=20))
surrogates = st.sampled_from([Raw('"\\ud800"'), Raw('"a\\udfffb"'), Raw('"\\u0000"')])
oversize = st.integers(min_value=4097, max_value=20_000).map(lambda n: "x" * n)
unicode_junk = st.text(min_size=1, max_size=50).filter(
    lambda s: s.strip() and s.strip() not in _KNOWN and not _floatish(s))
containers = st.one_of(st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                            max_size=3))

hostile = st.one_of(huge_ints, bad_numbers, deep, control_strings, surrogates, oversize, unicode_junk,
                    containers, st.booleans())
hostile_number_field = st.one_of(huge_ints, bad_numbers, deep, control_strings, surrogates, oversize, containers,
                                 st.booleans(), unicode_junk)


def config_bodies():
    """POST /api/v1/ai-options/config payloads with one hostile value somewhere."""
    return st.one_of(
        hostile.map(lambda h: {"llm": {"provider": h, "model": "openai/gpt-oss-20b"}}),
        hostile.map(lambda h: {"llm": {"provider": "groq", "model": h}}),
        hostile.map(lambda h: {"tts": {"provider": "google", "voice_id": h}}),
        hostile.map(lambda h: {"tts": h}),
        hostile_number_field.map(lambda h: {"turn": {"eot_timeout_ms": h}}),
        hostile_number_field.map(lambda h: {"turn": {"eot_threshold": h}}),
        hostile_number_field.map(lambda h: {"turn": {"eager_eot_threshold": h}}),
        hostile_number_field.map(lambda h: {"llm": {"provider": "openai", "model": "gpt-4o-mini"},
                                            "turn": {"eot_timeout_ms": h}}),  # one bad part: nothing saved
        st.builds(lambda k: {k: 1}, st.one_of(control_strings, oversize, unicode_junk)),
        hostile,
    )


def campaign_voice_bodies():
    return st.one_of(
        hostile.map(lambda h: {"voice_id": h, "provider": "google"}),
        hostile.map(lambda h: {"voice_id": "en-US-Chirp3-HD-Leda", "provider": h}),
        hostile,
    )


raw_bodies = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()),
    st.integers(min_value=65 * 1024, max_value=2 * 1024 * 1024).map(lambda n: b'{"llm": "' + b"a" * n + b'"}'),
    st.just(b"\xff\xfe{}"),
)
