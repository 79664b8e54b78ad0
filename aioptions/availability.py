"""Which catalog LLM models the provider does not serve right now (its ``GET /models``).

Checked only for keyed cloud providers, cached for a few minutes, and never on a request path
that must be fast: the page calls ``refresh_model_availability`` in the background and shows the
last result. A failed check marks nothing unavailable (absence of proof is not proof).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from . import catalog
from .keys import has_key

log = logging.getLogger(__name__)
_TTL_S = 300.0
_lock = threading.Lock()
_state: dict = {"checked_at": 0.0, "missing": {}, "errors": {}}


def unavailable_models() -> dict[str, set[str]]:
    with _lock:
        return {k: set(v) for k, v in _state["missing"].items()}


def last_errors() -> dict[str, str]:
    with _lock:
        return dict(_state["errors"])


async def _check(provider_id: str) -> set[str]:
    from .providers.factory import build_llm_for

    llm = build_llm_for(provider_id, catalog.llm_models(provider_id)[0].id)
    try:
        served = set(await asyncio.wait_for(llm.list_models(), timeout=5.0))
    finally:
        await llm.aclose()
    return {m.id for m in catalog.llm_models(provider_id) if m.id not in served}


async def refresh_model_availability(force: bool = False) -> dict[str, set[str]]:
    """Re-check keyed providers if the cache is stale (or ``force``); returns the missing map."""
    with _lock:
        fresh = time.monotonic() - _state["checked_at"] < _TTL_S and _state["checked_at"] > 0
    if fresh and not force:
        return unavailable_models()
    missing: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    for prov in catalog.providers("llm"):
        if prov.offline or not has_key("llm", prov.id):
            continue
        try:
            missing[prov.id] = await _check(prov.id)
        except Exception as exc:  # noqa: BLE001 - a provider outage must not break the page
            errors[prov.id] = f"{type(exc).__name__}: {exc}"
            log.warning("model check for %s failed: %s", prov.id, type(exc).__name__)
    with _lock:
        _state.update(checked_at=time.monotonic(), missing=missing, errors=errors)
    return missing
