"""Writes to the AI configuration: validate against the catalog, save atomically, record history,
broadcast. Every entry point (page, REST, WebSocket, admin) goes through these functions.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import catalog
from .events import broadcast_config
from .models import AIConfig, AIConfigChange
from .selectors import config_dict, get_ai_config


class ValidationError(ValueError):
    """Bad input from a caller; the message is safe to show and nothing was saved."""


def _record(user, source: str, target: str, changes: dict[str, tuple[Any, Any]]) -> None:
    AIConfigChange.objects.bulk_create(
        AIConfigChange(user=user if getattr(user, "pk", None) else None, source=source, target=target,
                       field=name, old_value=old, new_value=new)
        for name, (old, new) in changes.items()
    )


def _apply(fields: dict[str, Any], *, user, source: str) -> dict:
    """Lock the row, apply the fields, save and record what changed; broadcast after commit."""
    with transaction.atomic():
        get_ai_config()  # make sure the row exists before locking it
        cfg = AIConfig.objects.select_for_update().get(pk=1)
        changes = {k: (getattr(cfg, k), v) for k, v in fields.items() if getattr(cfg, k) != v}
        if changes:
            for k, (_, v) in changes.items():
                setattr(cfg, k, v)
            cfg.version += 1
            cfg.updated_by = user if getattr(user, "pk", None) else None
            cfg.save()
            _record(user, source, "ai_config", changes)
        payload = {"target": "ai_config", "config": config_dict(cfg), "changed": sorted(changes)}
        if changes:
            transaction.on_commit(lambda: broadcast_config(payload))
    return payload


def _as_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} is required and must be a non-empty string")
    return value.strip()


def update_llm(*, provider: Any, model: Any, user=None, source: str = "api") -> dict:
    provider, model = _as_str(provider, "provider"), _as_str(model, "model")
    try:
        catalog.validate_llm(provider, model)
    except catalog.CatalogError as exc:
        raise ValidationError(str(exc)) from None
    return _apply({"llm_provider": provider, "llm_model": model}, user=user, source=source)


def update_tts_voice(*, provider: Any, voice_id: Any, user=None, source: str = "api") -> dict:
    provider, voice_id = _as_str(provider, "provider"), _as_str(voice_id, "voice_id")
    try:
        catalog.validate_voice(provider, voice_id)
    except catalog.CatalogError as exc:
        raise ValidationError(str(exc)) from None
    return _apply({"tts_provider": provider, "tts_voice_id": voice_id}, user=user, source=source)


def _number(value: Any, name: str, lo: float, hi: float, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValidationError(f"{name} must be a number") from None
        else:
            raise ValidationError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo:g} and {hi:g} (got {value:g})")
    if integer:
        if int(value) != value:
            raise ValidationError(f"{name} must be a whole number")
        return int(value)
    return float(value)


_UNSET = object()


def update_turn(*, eot_threshold: Any = _UNSET, eager_eot_threshold: Any = _UNSET,
                eot_timeout_ms: Any = _UNSET, user=None, source: str = "api") -> dict:
    """Flux turn settings. ``eager_eot_threshold`` None/""/"off" turns eager end-of-turn off.
    Omitted fields keep their value; Flux needs eager <= eot, which is checked on the result."""
    cfg = get_ai_config()
    fields: dict[str, Any] = {}
    if eot_threshold is not _UNSET:
        fields["eot_threshold"] = _number(eot_threshold, "eot_threshold", 0.5, 1.0)
    if eager_eot_threshold is not _UNSET:
        if eager_eot_threshold in (None, "", "off"):
            fields["eager_eot_threshold"] = None
        else:
            fields["eager_eot_threshold"] = _number(eager_eot_threshold, "eager_eot_threshold", 0.3, 0.9)
    if eot_timeout_ms is not _UNSET:
        fields["eot_timeout_ms"] = _number(eot_timeout_ms, "eot_timeout_ms", 500, 60000, integer=True)
    if not fields:
        raise ValidationError("give at least one of eot_threshold, eager_eot_threshold, eot_timeout_ms")
    eot = fields.get("eot_threshold", cfg.eot_threshold)
    eager = fields.get("eager_eot_threshold", cfg.eager_eot_threshold)
    if eager is not None and eager > eot:
        raise ValidationError(f"eager_eot_threshold ({eager:g}) must not exceed eot_threshold ({eot:g})")
    return _apply(fields, user=user, source=source)
