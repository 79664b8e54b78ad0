"""Log hygiene: bound and escape attacker-controlled values, and keep secrets out of every line.

Two tools, because the two problems differ:

* ``clip(value)`` is for code that logs something a stranger sent (a SIP header, a user agent, a
  transcript, a URL path). It escapes control characters and newlines the way ``repr`` does, so a
  value can never forge a second log line or drive a terminal, and cuts it to ``n`` characters so
  one request cannot fill a disk. Call it at the log call: ``log.info("UA %s", clip(ua))``.
* ``RedactingFilter`` sits on the log handlers (``talky.settings.LOGGING``) as the safety net for
  what a call site forgot: every configured secret (provider keys, Django's SECRET_KEY), bearer and
  API tokens, ``Authorization``/``Proxy-Authorization`` values, digest ``response=``/``ha1=``/
  ``password=`` pairs are replaced with ``[redacted]``, and string arguments are clipped.

``redact(text)`` is also applied to error messages the API returns, so a provider error that
echoes a key never reaches a client either.

It lives in aioptions, the lowest package, because every layer logs what strangers send (the SIP
gateway, the API plumbing, the tool runner); Django is only read lazily, for the secret settings.
``talky.logsafe`` re-exports it for the LOGGING filter path in settings.
"""

from __future__ import annotations

import logging
import re
from typing import Any

DEFAULT_MAX = 200
REDACTED = "[redacted]"

_CONTROL = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Settings whose values are secrets (same idea as Django's SafeExceptionReporterFilter).
_SECRET_SETTING = re.compile(r"API_KEY|TOKEN|SECRET|PASSWORD|PASS$|CREDENTIALS|SIGNATURE", re.I)
_PATTERNS = (
    # Authorization: Bearer xyz / Proxy-Authorization: Digest username=..., response="..."
    (re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)[^\r\n]*"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"\btk_[A-Za-z0-9_-]{8,}"), "tk_" + REDACTED),  # our API tokens
    # digest response / HA1 (32 hex digits), and key=value pairs that name a credential
    (re.compile(r"(?i)\b(response|ha1)(\s*[=:]\s*\"?)[0-9a-f]{32}"), r"\1\2" + REDACTED),
    (re.compile(r"(?i)\b(password|passwd|api[_-]?key|access[_-]?token|client[_-]?secret)"
                r"(\"?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1\2" + REDACTED),
)


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def clip(value: Any, n: int = DEFAULT_MAX) -> str:
    """``value`` as one safe log token: control characters escaped, at most ``n`` characters plus a
    ``…(+K)`` note saying how much was cut. Bytes are decoded leniently first."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else str(value)
    extra = len(text) - n
    if extra > 0:
        text = text[:n]
    text = _CONTROL.sub(_escape, text)
    return f"{text}…(+{extra})" if extra > 0 else text


_names_cache: tuple[object, int, list[str]] | None = None


def _secret_names(settings: Any) -> list[str]:
    """Names of secret-looking settings, listed again only when the settings object changes.

    Why: ``dir(settings)`` plus a regex over every name ran for every log line, ~0.3 ms each; the
    bridge logs a few lines per call set-up and end, so at 100 calls it was a visible share of
    event-loop stalls (issue 18 profile). ``override_settings`` swaps ``_wrapped`` and assigning a
    new setting grows its ``__dict__``, so the key (identity, size) still sees every change."""
    global _names_cache
    wrapped = getattr(settings, "_wrapped", settings)
    key = (wrapped, len(getattr(wrapped, "__dict__", ())))
    cached = _names_cache
    if cached is not None and cached[0] is key[0] and cached[1] == key[1]:
        return cached[2]
    names = [n for n in dir(settings) if n.isupper() and _SECRET_SETTING.search(n)]
    _names_cache = (key[0], key[1], names)
    return names


def known_secrets() -> list[str]:
    """Values of secret-looking settings (values read each time: tests and reloads change them)."""
    try:
        from django.conf import settings

        names = _secret_names(settings)
        values = [getattr(settings, n, "") for n in names]
    except Exception:  # noqa: BLE001 - settings not configured (a plain script): patterns only
        return []
    out = [v for v in values if isinstance(v, str) and len(v) >= 6]
    return sorted(set(out), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every known secret and every credential-looking value replaced."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """Handler filter: clip string arguments, then redact the formatted line and its traceback.

    It rewrites the record in place (message fixed, args dropped), so every handler after it
    sees the safe text. Never raises: a broken record is logged as it would have been.
    """

    def __init__(self, max_arg: int = DEFAULT_MAX) -> None:
        super().__init__()
        self.max_arg = max_arg

    def _arg(self, a: Any) -> Any:
        if isinstance(a, (str, bytes, bytearray)):
            return clip(a, self.max_arg)
        if isinstance(a, BaseException):
            return clip(str(a), self.max_arg)
        return a

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.args, dict):
                record.args = {k: self._arg(v) for k, v in record.args.items()}
            elif record.args:
                record.args = tuple(self._arg(a) for a in record.args)
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # noqa: BLE001 - logging must never fail because of the filter
            pass
        return True
