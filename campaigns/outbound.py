"""Where an outbound call may go, decided before any SIP is sent (reads only; sync, ORM).

``route()`` turns a destination into a plan the bridge can dial, or raises ``Refused``: an E.164
number goes through the campaign's trunk and must match the trunk's allowed prefixes (empty =
no outbound at all) and not be on the do-not-call list; a SIP URI is dialled as given (staff
only: the API and the command, never the dialer); anything else is a registered extension,
which only the bridge can look up (its registrar lives in its memory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .models import Campaign, DoNotCall, Trunk
from .phones import BadNumber, to_e164

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,40})\}")
_EXTENSION = re.compile(r"[A-Za-z0-9_.-]{1,32}")
OUTBOUND_NOTE = ("\n\nThis is an outbound call: you placed it{to}. Introduce yourself and the reason for the "
                 "call first; if the person is busy or not interested, say goodbye politely.")


class Refused(ValueError):
    """The call is not allowed (or not possible); the message says why. Nothing was sent."""


@dataclass
class RoutePlan:
    kind: str  # "trunk" | "uri" | "extension"
    dest: str  # E.164, SIP URI or extension
    request_uri: str = ""
    host: str = ""
    port: int = 5060
    trunk: dict = field(default_factory=dict)  # id, caps, caller id, credentials (trunk calls)


def render(template: str, variables: dict) -> str:
    """``{first_name}`` -> the contact's value; unknown names stay as written. No attribute or
    index access (unlike str.format), so a template can never reach into Python objects."""
    return _VAR.sub(lambda m: str(variables.get(m.group(1), m.group(0)))[:200], template or "")


def trunk_of(campaign_id: int) -> Trunk | None:
    c = Campaign.objects.select_related("dialer__trunk").filter(pk=campaign_id).first()
    dialer = getattr(c, "dialer", None) if c else None
    return dialer.trunk if dialer is not None else None


def is_dnc(e164: str) -> bool:
    return DoNotCall.objects.filter(phone=e164).exists()


def route(dest: str, campaign_id: int | None) -> RoutePlan:
    dest = (dest or "").strip()
    if not dest or len(dest) > 256 or any(ord(ch) < 32 or ord(ch) == 127 for ch in dest):
        raise Refused("destination is empty or not printable")
    if dest.lower().startswith("sip:"):
        return RoutePlan("uri", dest, request_uri=dest)
    if dest.startswith("+"):
        try:
            e164 = to_e164(dest)
        except BadNumber as exc:
            raise Refused(f"bad number: {exc}") from None
        trunk = trunk_of(campaign_id) if campaign_id else None
        if trunk is None or not trunk.active:
            raise Refused("the campaign has no active trunk to dial numbers through")
        if not trunk.allows(e164):
            raise Refused(f"{e164} is not in the allowed destination prefixes of trunk {trunk.name!r}"
                          + (" (none set: outbound is off)" if not trunk.prefixes else ""))
        if is_dnc(e164):
            raise Refused(f"{e164} is on the do-not-call list")
        return RoutePlan("trunk", e164, request_uri=f"sip:{trunk.user_part(e164)}@{trunk.host}:{trunk.port}",
                         host=trunk.host, port=trunk.port, trunk={
                             "id": trunk.pk, "name": trunk.name, "max_concurrent": trunk.max_concurrent,
                             "cps": trunk.calls_per_second, "from_user": trunk.from_user or "talky",
                             "from_display": trunk.from_display, "pai": trunk.p_asserted_identity,
                             "username": trunk.username, "password": trunk.password})
    if _EXTENSION.fullmatch(dest):
        return RoutePlan("extension", dest)
    raise Refused("destination must be +E.164, a sip: URI or a registered extension")


def call_context(campaign_id: int | None, variables: dict, to: str = "") -> dict:
    """Greeting and prompt of an outbound call: the campaign's, with the contact's variables
    filled in and a note that we placed the call (the agent must not answer as if called)."""
    c = Campaign.objects.select_related("dialer").filter(pk=campaign_id).first() if campaign_id else None
    dialer = getattr(c, "dialer", None) if c else None
    greeting = render(c.greeting, variables) if c else ""
    prompt = render(c.system_prompt, variables) if c else ""
    who = variables.get("name") or variables.get("first_name") or ""
    return {"greeting": greeting, "system_prompt": prompt + OUTBOUND_NOTE.format(to=f" to {who}" if who else ""),
            "campaign_name": c.name if c else "", "direction": "outbound", "variables": variables, "to": to,
            "amd_mode": dialer.amd_mode if dialer else "off",
            "voicemail_message": render(dialer.voicemail_message, variables) if dialer else ""}
