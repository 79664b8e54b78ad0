"""Reads for the bridge: SIP accounts (digest auth)."""

from __future__ import annotations

from .models import SipAccount


def sip_accounts_ha1() -> dict[str, str]:
    return dict(SipAccount.objects.filter(active=True).values_list("username", "ha1"))
