"""The input layer and the log helpers on their own: the rules every endpoint relies on."""

import logging

import pytest

from aioptions import inputs
from talky.logsafe import RedactingFilter, clip, redact


@pytest.mark.parametrize("raw,fragment", [
    ("[" * 50_000 + "]" * 50_000, "nested deeper"),
    ('{"a": ' * 20 + "1" + "}" * 20, "nested deeper"),
    ('{"n": ' + "9" * 401 + "}", "n is out of range"),
    ('{"turn": {"eot_timeout_ms": -' + "1" * 30 + "}}", "turn.eot_timeout_ms is out of range"),
    ('{"x": 1e999}', "x is out of range"),
    ('{"x": NaN}', "x must be a finite number"),
    ('{"x": [1, Infinity]}', "x[1] must be a finite number"),
    ('{"name": "a\\u0000b"}', "name contains a NUL"),
    ('{"name": "\\ud800"}', "lone surrogate"),
    ('{"k\\u0000": 1}', "NUL"),
    ('{"s": "' + "a" * 5000 + '"}', "at most 4096"),
    ("{oops", "not valid JSON"),
])
def test_parse_json_refuses_hostile_documents(raw, fragment):
    with pytest.raises(inputs.InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        inputs.parse_json(raw.encode(), max_bytes=1 << 20)


def test_parse_json_bounds_size_before_parsing():
    with pytest.raises(inputs.PayloadTooLarge) as e:
        inputs.parse_json(b" " * 65, max_bytes=64)
    assert e.value.status == 413


def test_depth_scan_ignores_brackets_inside_strings():
    doc = '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": "\\"[[[[[[[[[[[[[["}'
    assert inputs.json_depth(doc) == 1
    assert inputs.parse_json(doc)["a"].startswith("[[[")


def test_parse_json_keeps_normal_values():
    data = inputs.parse_json(b'{"a": 123456789012345, "b": -0.5, "c": "h\\u00e9llo \\ud83d\\ude00", "d": [null, true]}')
    assert data == {"a": 123456789012345, "b": -0.5, "c": "héllo 😀", "d": [None, True]}


@pytest.mark.parametrize("value,fragment", [
    (10**400, "between"), ("1" * 40, "must be a number"), ("1e400", "finite"), (float("nan"), "finite"),
    (True, "must be a number"), ([1], "must be a number"), ("abc", "must be a number"), (2000.5, "whole"),
])
def test_number_refuses_without_overflowing(value, fragment):
    with pytest.raises(inputs.InputError, match=fragment) as e:
        inputs.number(value, "eot_timeout_ms", 500, 60000, integer=True)
    assert e.value.field == "eot_timeout_ms"


def test_number_accepts_form_strings():
    assert inputs.number(" 2000 ", "t", 500, 60000, integer=True) == 2000
    assert inputs.number("0.75", "t", 0.5, 1.0) == 0.75


@pytest.mark.parametrize("value", ["a\x00b", "x" * 300, "a\nb", "\u2028", "-", "a b", "bad..name", "-lead.example"])
def test_host_refuses_what_bind_should_never_see(value):
    with pytest.raises(inputs.InputError) as e:
        inputs.host(value)
    assert e.value.field == "host"


def test_host_accepts_addresses_and_names():
    assert inputs.host("127.0.0.1") == "127.0.0.1"
    assert inputs.host("[::1]") == "::1"
    assert inputs.host("sip-1.example.com") == "sip-1.example.com"


@pytest.mark.parametrize("value", [0, -1, 2**63, "²", "1" * 20, True, 1.5, None])
def test_pk_range(value):
    with pytest.raises(inputs.InputError):
        inputs.pk(value, "campaign_id")
    assert inputs.pk("42", "campaign_id") == 42


def test_clip_truncates_and_escapes():
    out = clip("evil\r\nINFO forged line\x1b[31m" + "x" * 500)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert out.startswith("evil\\r\\nINFO forged line\\x1b[31m") and out.endswith("…(+327)")
    assert len(out) < 220
    assert clip(b"caf\xc3\xa9 \xff") == "café \\\\xff"
    assert clip("a\\nb") == "a\\\\nb"  # a typed backslash-n stays distinguishable from a newline


def test_redact_known_secrets_and_credential_shapes(settings):
    settings.GROQ_API_KEY = "gsk_planted_secret_123"
    text = ("key gsk_planted_secret_123; Authorization: Bearer tk_abcdefghijklmnop\n"
            'Proxy-Authorization: Digest username="a", response="0123456789abcdef0123456789abcdef"\n'
            "password=hunter22 ha1=0123456789abcdef0123456789abcdef")
    out = redact(text)
    for secret in ("gsk_planted_secret_123", "tk_abcdefghijklmnop", "0123456789abcdef0123456789abcdef", "hunter22"):
        assert secret not in out
    assert redact("LLM response: hello, first token at 120 ms") == "LLM response: hello, first token at 120 ms"


def test_filter_rewrites_records_for_every_handler(settings):
    settings.OPENAI_API_KEY = "sk-planted-openai-key"
    args = ("a\nb" * 200, "sk-planted-openai-key")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "UA %s key %s", args, None)
    try:
        raise ValueError("boom with sk-planted-openai-key")
    except ValueError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert RedactingFilter().filter(record)
    line = logging.Formatter().format(record)
    assert "sk-planted-openai-key" not in line and "a\nb" not in line and "…(+" in line
