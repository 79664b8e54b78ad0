"""Which providers have credentials. Reads settings only; never returns or logs a secret."""

from __future__ import annotations

from django.conf import settings

from . import catalog


def has_key(kind: str, provider_id: str) -> bool:
    """True when the provider can be used: offline engines always, cloud ones when keyed."""
    prov = catalog.get_provider(kind, provider_id)
    if prov is None:
        return False
    if prov.offline:
        return True
    if provider_id == "google" and getattr(settings, "GOOGLE_TTS_INSECURE_ENDPOINT", ""):
        return True  # a local endpoint (fake server or proxy) needs no Google credentials
    return bool(getattr(settings, prov.key_setting, ""))
