"""Trunks: the one validation (admin and API share it), writes, and the JSON shape.

A trunk is where outbound money goes, so its allowlist of destination prefixes is checked here
on every write and again by ``campaigns.outbound.route()`` before any SIP is sent.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.db import transaction

from aioptions import inputs
from aioptions.inputs import InputError

from .models import Trunk

_PREFIX = re.compile(r"\+[0-9]{1,15}")
_USER = re.compile(r"[A-Za-z0-9_.+*#-]{0,64}")
FIELDS = ("name", "host", "port", "username", "password", "register", "register_expires", "ip_auth",
          "inbound_ips", "from_user", "from_display", "p_asserted_identity", "number_format", "dial_prefix",
          "max_concurrent", "calls_per_second", "allowed_prefixes", "active")


class TrunkNotFound(LookupError):
    pass


def parse_prefixes(value: Any, field: str = "allowed_prefixes") -> str:
    """A list or a comma/newline text of ``+<digits>`` prefixes -> the stored text (one per line)."""
    items = value if isinstance(value, list) else inputs.text(value or "", field, max_len=4000).replace(
        "\n", ",").split(",")
    out = []
    for item in items:
        item = inputs.name(item, field, max_len=16, allow_empty=True).replace(" ", "")
        if not item:
            continue
        if not _PREFIX.fullmatch(item):
            raise InputError(f"{field}: {inputs.show(item, 20)} is not an E.164 prefix like +1555", field=field)
        out.append(item)
    return "\n".join(dict.fromkeys(out))


def parse_ips(value: Any, field: str = "inbound_ips") -> str:
    raw = inputs.name(value or "", field, max_len=255, allow_empty=True)
    ips = [p.strip() for p in raw.split(",") if p.strip()]
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InputError(f"{field}: {inputs.show(ip, 40)} is not an IP address", field=field) from None
    return ",".join(ips)


def clean(data: dict, *, partial: bool = False) -> dict:
    """Validated field values from JSON (or admin form) input; InputError names the bad field."""
    inputs.only_keys(data, set(FIELDS))
    out: dict[str, Any] = {}
    if not partial:
        for key in ("name", "host"):
            if key not in data:
                raise InputError(f"{key} is required", field=key)
    checks = {
        "name": lambda v: inputs.name(v, "name", max_len=80),
        "host": lambda v: inputs.host(v, "host"),
        "port": lambda v: inputs.number(v, "port", 1, 65535, integer=True),
        "username": lambda v: inputs.name(v, "username", allow_empty=True),
        "password": lambda v: inputs.name(v, "password", allow_empty=True),
        "register_expires": lambda v: inputs.number(v, "register_expires", 60, 86400, integer=True),
        "inbound_ips": parse_ips,
        "from_display": lambda v: inputs.name(v, "from_display", max_len=64, allow_empty=True).replace('"', ""),
        "p_asserted_identity": lambda v: inputs.name(v, "p_asserted_identity", max_len=255, allow_empty=True),
        "max_concurrent": lambda v: inputs.number(v, "max_concurrent", 1, 1000, integer=True),
        "calls_per_second": lambda v: inputs.number(v, "calls_per_second", 0.01, 100),
        "allowed_prefixes": parse_prefixes,
    }
    for key, value in data.items():
        if key in checks:
            out[key] = checks[key](value)
        elif key in ("register", "ip_auth", "active"):
            if not isinstance(value, bool):
                raise InputError(f"{key} must be true or false", field=key)
            out[key] = value
        elif key in ("from_user", "dial_prefix"):
            v = inputs.name(value, key, max_len=64, allow_empty=True)
            if not _USER.fullmatch(v):
                raise InputError(f"{key} may hold only letters, digits and + * # . _ -", field=key)
            out[key] = v
        elif key == "number_format":
            if value not in Trunk.NumberFormat.values:
                raise InputError(f"number_format must be one of {', '.join(Trunk.NumberFormat.values)}", field=key)
            out[key] = value
    return out


def trunk_dict(t: Trunk) -> dict:
    """The API shape: everything but the password (only whether one is set)."""
    d = {f: getattr(t, f) for f in FIELDS if f != "password"}
    d["allowed_prefixes"] = t.prefixes
    d.update(id=t.pk, has_password=bool(t.password), registration={
        "status": t.registration_status or ("off" if not t.register else "pending"),
        "error": t.registration_error, "until": t.registered_until.isoformat() if t.registered_until else None})
    return d


def create_trunk(data: dict) -> Trunk:
    values = clean(data)
    if Trunk.objects.filter(name=values["name"]).exists():
        raise InputError("a trunk with this name exists", field="name")
    return Trunk.objects.create(**values)


def update_trunk(trunk_id: int, data: dict) -> Trunk:
    values = clean(data, partial=True)
    with transaction.atomic():
        try:
            t = Trunk.objects.select_for_update().get(pk=trunk_id)
        except Trunk.DoesNotExist:
            raise TrunkNotFound(f"trunk {trunk_id} does not exist") from None
        if "name" in values and Trunk.objects.filter(name=values["name"]).exclude(pk=t.pk).exists():
            raise InputError("a trunk with this name exists", field="name")
        for k, v in values.items():
            setattr(t, k, v)
        t.save()
    return t


def delete_trunk(trunk_id: int) -> None:
    if not Trunk.objects.filter(pk=trunk_id).delete()[0]:
        raise TrunkNotFound(f"trunk {trunk_id} does not exist")


def set_registration(trunk_id: int, *, status: str, error: str = "", until=None) -> None:
    """The bridge reports the REGISTER state (shown in the admin)."""
    Trunk.objects.filter(pk=trunk_id).update(registration_status=status[:12], registration_error=error[:255],
                                             registered_until=until)
