"""Phone numbers in one form: E.164 (``+15551234567``), validated with Google's libphonenumber.

Every number the dialer, the trunk allowlist and the do-not-call list compare is normalised here
first, so "+1 (555) 123-4567", "15551234567" with region US and "+15551234567" are one number.
"""

from __future__ import annotations

import phonenumbers


class BadNumber(ValueError):
    """The reason is safe to show to the user (it never echoes more than the clipped input)."""


def to_e164(raw: str, region: str | None = None) -> str:
    """``raw`` as E.164, or BadNumber. Without a leading + a ``region`` (ISO code, e.g. "US") is needed."""
    if not isinstance(raw, str) or not raw.strip():
        raise BadNumber("phone is empty")
    text = raw.strip()
    if len(text) > 32:
        raise BadNumber("phone is longer than 32 characters")
    try:
        num = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"not a phone number ({exc._msg})") from None
    if not phonenumbers.is_possible_number(num):
        raise BadNumber("not a possible phone number (wrong length)")
    if not phonenumbers.is_valid_number(num):
        raise BadNumber("not a valid phone number for its country")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def timezone_of(e164: str) -> str:
    """The first time zone libphonenumber gives for the number ("" when it knows none)."""
    from phonenumbers import timezone as pn_tz

    try:
        zones = pn_tz.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return ""
    return zones[0] if zones and zones[0] != "Etc/Unknown" else ""
