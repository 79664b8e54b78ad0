"""The one input layer for every API endpoint, the WebSocket consumer and the services behind them.

A value from outside is checked here before anything uses it, so a hostile value becomes a clear
4xx error naming the field — never an OverflowError, a RecursionError or a NUL byte reaching the
database, a socket or a subprocess. Pure Python (no request objects), so the HTTP views
(``aioptions.http``), the WebSocket consumer and the services share exactly the same rules:

* JSON text: at most ``max_body_bytes()`` bytes (413), nested at most ``MAX_DEPTH`` levels (checked
  by a linear scan *before* parsing, so a 50,000-deep array never reaches the recursive parser),
  integers of at most 15 digits, finite floats, no NaN/Infinity, strings without NUL or lone
  surrogates and at most ``MAX_STRING`` characters.
* Fields: ``name``/``host`` (no control characters at all: they become identifiers, hosts, file
  names), ``number`` (range-checked without ever converting a huge int to float), ``pk``.

Errors carry the field's dotted path (``turn.eot_timeout_ms``) and echo at most a clipped value.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any

from aioptions.logsafe import clip

MAX_DEPTH = 8  # our payloads are 2-3 levels deep; anything near this is an attack or a bug
MAX_STRING = 4096
MAX_NAME = 128
MAX_INT_DIGITS = 15  # exactly representable as a double too
PK_MAX = 2**63 - 1  # the largest primary key any supported database stores
DEFAULT_MAX_BODY = 64 * 1024


class InputError(ValueError):
    """Bad input: the message is safe to show, ``field`` names the culprit, nothing was saved."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        if status is not None:
            self.status = status

    def as_dict(self) -> dict:
        return {"error": str(self), "field": self.field}


class PayloadTooLarge(InputError):
    status = 413


class UnsupportedMediaType(InputError):
    status = 415


def max_body_bytes() -> int:
    from django.conf import settings

    return int(getattr(settings, "API_MAX_BODY_BYTES", DEFAULT_MAX_BODY))


def show(value: Any, n: int = 60) -> str:
    """A value for an error message: repr-like, escaped and clipped (never the whole input)."""
    return clip(repr(value) if isinstance(value, str) else value, n)


# --- JSON text ---------------------------------------------------------------------------------

class _Bad:
    """Stands in for a number the parser saw but we refuse; reported with its field path."""

    def __init__(self, raw: str, why: str) -> None:
        self.raw, self.why = raw, why


def _parse_int(raw: str) -> int | _Bad:
    if len(raw.lstrip("-")) > MAX_INT_DIGITS:
        return _Bad(raw, "is out of range")
    return int(raw)


def _parse_float(raw: str) -> float | _Bad:
    value = float(raw)
    return value if math.isfinite(value) else _Bad(raw, "is out of range")


def _parse_constant(raw: str) -> _Bad:
    return _Bad(raw, "must be a finite number")


_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text, in linear time and constant stack."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING_TOKEN.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
               what: str = "body") -> Any:
    """Parse one JSON document under every bound above; raise InputError (400/413) otherwise.
    ``what`` names the thing in messages ("body", "message")."""
    limit = max_body_bytes() if max_bytes is None else max_bytes
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes; the limit is {limit}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what} is not valid UTF-8") from None
    if json_depth(raw) > max_depth:
        raise InputError(f"JSON is nested deeper than {max_depth} levels")
    try:
        value = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
    except (ValueError, RecursionError):
        raise InputError(f"{what} is not valid JSON") from None
    check_tree(value)
    return value


def _check_string(s: str, field: str | None) -> None:
    if len(s) > MAX_STRING:
        raise InputError(f"{field or 'value'} is {len(s)} characters; at most {MAX_STRING}", field=field)
    if "\x00" in s:
        raise InputError(f"{field or 'value'} contains a NUL character", field=field)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{field or 'value'} contains invalid unicode (a lone surrogate)", field=field) from None


def check_tree(value: Any, path: str = "") -> None:
    """Walk a parsed document (iteratively: depth is already bounded) and reject bad leaves."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        field = where or None
        if isinstance(node, _Bad):
            raise InputError(f"{field or 'number'} {node.why} ({clip(node.raw, 40)})", field=field)
        if isinstance(node, str):
            _check_string(node, field)
        elif isinstance(node, dict):
            for k, v in node.items():
                _check_string(k, field)
                stack.append((v, f"{where}.{k}" if where else k))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))


# --- fields ------------------------------------------------------------------------------------

_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def obj(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{field} must be an object", field=field)
    return value


def only_keys(data: dict, allowed: set[str] | frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        names = ", ".join(clip(k, 40) for k in unknown[:5])
        first = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise InputError(f"unknown field(s){' in ' + prefix if prefix else ''}: {names}", field=first)


def name(value: Any, field: str, *, max_len: int = MAX_NAME, allow_empty: bool = False) -> str:
    """An identifier-like string (provider, model, voice id, agent): stripped, bounded, and free of
    control characters, because it ends up in hosts, file names, cache keys and log lines."""
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        need = "must be a string" if allow_empty else "is required and must be a non-empty string"
        raise InputError(f"{field} {need}", field=field)
    if len(value) > max_len:
        raise InputError(f"{field} is {len(value)} characters; at most {max_len}", field=field)
    if _ANY_CONTROL.search(value):  # before stripping: "x\n" is not a name with a space to trim
        raise InputError(f"{field} must not contain control characters", field=field)
    value = value.strip()
    if not value and not allow_empty:
        raise InputError(f"{field} is required and must be a non-empty string", field=field)
    _check_string(value, field)
    return value


def text(value: Any, field: str, *, max_len: int) -> str:
    """Free text (a preview sentence): bounded, no control characters other than newline/tab."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string", field=field)
    if len(value) > max_len:
        raise InputError(f"{field} is {len(value)} characters; at most {max_len}", field=field)
    if _ANY_CONTROL.search(value.replace("\n", " ").replace("\t", " ")):
        raise InputError(f"{field} must not contain control characters", field=field)
    _check_string(value, field)
    return value


def number(value: Any, field: str, lo: float, hi: float, *, integer: bool = False) -> float | int:
    """A number in [lo, hi]. Form posts send strings, so short numeric strings are accepted; huge
    ints are compared exactly (never converted to float, which is what used to overflow)."""
    if isinstance(value, str):
        raw = value.strip()
        if not raw or len(raw) > 32:
            raise InputError(f"{field} must be a number", field=field)
        try:
            value = int(raw) if re.fullmatch(r"[+-]?[0-9]+", raw) else float(raw)
        except ValueError:
            raise InputError(f"{field} must be a number", field=field) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{field} must be a number", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{field} must be a finite number", field=field)
    if not lo <= value <= hi:
        got = "a huge number" if isinstance(value, int) and value.bit_length() > 64 else show(value, 24)
        raise InputError(f"{field} must be between {lo:g} and {hi:g} (got {got})", field=field)
    if integer:
        if int(value) != value:
            raise InputError(f"{field} must be a whole number", field=field)
        return int(value)
    return float(value)


def pk(value: Any, field: str) -> int:
    """A database id: a positive int (or ASCII digit string) no larger than any database stores."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field} must be an integer", field=field)
    if not 1 <= value <= PK_MAX:
        raise InputError(f"{field} must be between 1 and {PK_MAX}", field=field)
    return value


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host(value: Any, field: str = "host") -> str:
    """An IP literal or an RFC 1123 host name: it is handed to ``bind()``."""
    value = name(value, field, max_len=253)
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if all(_HOST_LABEL.fullmatch(label) for label in value.rstrip(".").split(".")):
        return value
    raise InputError(f"{field} must be an IP address or a host name (got {show(value)})", field=field)
