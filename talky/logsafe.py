"""The log filter's old address: settings' LOGGING names ``talky.logsafe.RedactingFilter``. The
code lives in ``aioptions.logsafe`` (the lowest package), so that aioptions and telephony need not
import talky, which sits above them and only wires them together."""

from aioptions.logsafe import RedactingFilter, clip, known_secrets, redact

__all__ = ["RedactingFilter", "clip", "known_secrets", "redact"]
