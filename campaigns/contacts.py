"""Contacts of a campaign and the global do-not-call list: imports (CSV text or JSON rows) with
every bad row reported by line number and reason, duplicates skipped, numbers in E.164.

Columns: ``phone`` (required), ``name``, ``timezone`` (IANA, e.g. America/New_York; default:
derived from the number when it has one zone, else the campaign's), ``country`` (ISO region for
numbers written without +), anything else becomes a template variable (``{first_name}``).
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from typing import Any

from django.db import IntegrityError, transaction

from aioptions.inputs import InputError

from .models import Campaign, Contact, DoNotCall
from .phones import BadNumber, timezone_of, to_e164

MAX_ROWS = 10_000
MAX_VALUE = 500
RESERVED = {"phone", "name", "timezone", "country", "variables"}


class CampaignNotFound(LookupError):
    pass


def _zone(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value[:40]!r}") from None
    return value


def _row(raw: dict, default_region: str) -> dict:
    """One input row -> Contact fields; ValueError(reason) when it cannot be imported."""
    if not isinstance(raw, dict):
        raise ValueError("row must be an object")
    for key, value in raw.items():
        if not isinstance(key, str) or len(key) > 64:
            raise ValueError("column names must be text of at most 64 characters")
        if isinstance(value, str) and (len(value) > MAX_VALUE or "\x00" in value):
            raise ValueError(f"{key}: value too long or not text")
    phone = raw.get("phone")
    if not isinstance(phone, str):
        raise ValueError("phone is missing")
    try:
        e164 = to_e164(phone, (raw.get("country") or default_region or "").strip() or None)
    except BadNumber as exc:
        raise ValueError(str(exc)) from None
    tz = _zone(str(raw.get("timezone") or "")) or timezone_of(e164)
    variables = raw.get("variables") if isinstance(raw.get("variables"), dict) else {}
    variables = {**variables, **{k: v for k, v in raw.items() if k not in RESERVED and v not in (None, "")}}
    for k, v in variables.items():
        if not isinstance(v, (str, int, float, bool)):
            raise ValueError(f"variable {k} must be text or a number")
    name = str(raw.get("name") or "").strip()[:120]
    return {"phone": e164, "name": name, "timezone": tz, "variables": variables}


def parse_csv(text: str) -> list[tuple[int, dict]]:
    """(line number, row) for each data row; the header line is line 1."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "phone" not in [f.strip().lower() for f in reader.fieldnames]:
        raise InputError("CSV needs a header line with a phone column", field="phone")
    rows = []
    for row in reader:
        clean = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
        rows.append((reader.line_num, clean))
        if len(rows) > MAX_ROWS:
            raise InputError(f"at most {MAX_ROWS} rows per import", field="contacts")
    return rows


def import_contacts(campaign_id: int, rows: list[tuple[int, Any]], *, default_region: str = "") -> dict:
    """Import rows into a campaign: {"imported", "duplicates", "errors": [{"line", "reason"}]}.
    Valid rows are saved even when others are bad; a number already in the campaign (or earlier
    in the file) is skipped; a number on the do-not-call list is saved in state "dnc"."""
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    if len(rows) > MAX_ROWS:
        raise InputError(f"at most {MAX_ROWS} rows per import", field="contacts")
    errors, parsed = [], []
    for line, raw in rows:
        try:
            parsed.append((line, _row(raw, default_region)))
        except ValueError as exc:
            errors.append({"line": line, "reason": str(exc)})
    existing = set(Contact.objects.filter(campaign_id=campaign_id).values_list("phone", flat=True))
    dnc = set(DoNotCall.objects.filter(phone__in=[r["phone"] for _, r in parsed]).values_list("phone", flat=True))
    new, duplicates = [], []
    for line, r in parsed:
        if r["phone"] in existing:
            duplicates.append({"line": line, "phone": r["phone"]})
            continue
        existing.add(r["phone"])
        state = Contact.State.DNC if r["phone"] in dnc else Contact.State.PENDING
        new.append(Contact(campaign_id=campaign_id, state=state, **r))
    with transaction.atomic():
        Contact.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent import of the same number
    return {"imported": len(new), "duplicates": len(duplicates), "duplicate_rows": duplicates[:100],
            "errors": errors[:1000], "error_count": len(errors)}


# --- do-not-call ----------------------------------------------------------------------------
def add_dnc(phone: Any, reason: str = "", region: str = "") -> DoNotCall:
    """Add a number (normalised) to the do-not-call list and stop every pending contact with it."""
    if not isinstance(phone, str):
        raise InputError("phone is required", field="phone")
    try:
        e164 = to_e164(phone, region or None)
    except BadNumber as exc:
        raise InputError(str(exc), field="phone") from None
    with transaction.atomic():
        try:
            entry, _ = DoNotCall.objects.get_or_create(phone=e164, defaults={"reason": str(reason)[:200]})
        except IntegrityError:
            entry = DoNotCall.objects.get(phone=e164)
        Contact.objects.filter(phone=e164, state=Contact.State.PENDING).update(state=Contact.State.DNC)
    return entry


def remove_dnc(phone: str) -> bool:
    try:
        e164 = to_e164(phone)
    except BadNumber as exc:
        raise InputError(str(exc), field="phone") from None
    return DoNotCall.objects.filter(phone=e164).delete()[0] > 0


def contact_dict(c: Contact) -> dict:
    return {"id": c.pk, "phone": c.phone, "name": c.name, "timezone": c.timezone, "variables": c.variables,
            "state": c.state, "attempts": c.attempts, "last_outcome": c.last_outcome,
            "next_attempt_at": c.next_attempt_at.isoformat() if c.next_attempt_at else None}
