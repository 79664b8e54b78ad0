"""Writes to the AI configuration: validate against the catalog, save atomically, record history,
broadcast. Every entry point (page, REST, WebSocket, admin) goes through ``update_config`` (the
``update_llm``/``update_tts_voice``/``update_turn`` helpers are thin forms of it), so no entry
point can save what another would refuse.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import catalog, inputs
from .events import broadcast_config
from .inputs import InputError
from .models import AIConfig, AIConfigChange
from .selectors import config_dict, get_ai_config


class ValidationError(InputError):
    """Bad input from a caller; the message is safe to show, ``field`` names the value, and
    nothing was saved. An InputError, so every API view and the WebSocket answer it as a 4xx."""


def _record(user, source: str, target: str, changes: dict[str, tuple[Any, Any]]) -> None:
    AIConfigChange.objects.bulk_create(
        AIConfigChange(user=user if getattr(user, "pk", None) else None, source=source, target=target,
                       field=name, old_value=old, new_value=new)
        for name, (old, new) in changes.items()
    )


def _apply(parts: dict[str, tuple[Any, str]], *, user, source: str) -> dict:
    """Lock the row, validate every part against it, apply, record what changed; broadcast after
    commit. Validation happens inside the lock so a concurrent write cannot slip between the
    check (e.g. eager <= eot) and the save, and one bad part saves nothing."""
    with transaction.atomic():
        get_ai_config()  # make sure the row exists before locking it
        cfg = AIConfig.objects.select_for_update().get(pk=1)
        fields = _validated_fields(parts, cfg)
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


def _catalog(check, *args, field: str) -> None:
    try:
        check(*args)
    except catalog.CatalogError as exc:
        raise ValidationError(str(exc), field=field) from None


def _llm_fields(llm: Any, prefix: str) -> dict[str, Any]:
    llm = inputs.obj(llm, prefix.rstrip(".") or "llm")
    inputs.only_keys(llm, {"provider", "model"}, prefix.rstrip("."))
    provider = inputs.name(llm.get("provider"), f"{prefix}provider", max_len=32)
    model = inputs.name(llm.get("model"), f"{prefix}model")
    _catalog(catalog.validate_llm, provider, model, field=f"{prefix}model")
    return {"llm_provider": provider, "llm_model": model}


def _tts_fields(tts: Any, prefix: str) -> dict[str, Any]:
    tts = inputs.obj(tts, prefix.rstrip(".") or "tts")
    inputs.only_keys(tts, {"provider", "voice_id"}, prefix.rstrip("."))
    provider = inputs.name(tts.get("provider"), f"{prefix}provider", max_len=32)
    voice_id = inputs.name(tts.get("voice_id"), f"{prefix}voice_id")
    _catalog(catalog.validate_voice, provider, voice_id, field=f"{prefix}voice_id")
    return {"tts_provider": provider, "tts_voice_id": voice_id}


FLUX_TURN_FIELDS = frozenset({"eot_threshold", "eager_eot_threshold", "eot_timeout_ms"})
# (lo, hi) of the whole-number pipeline settings, in their unit (ms or s)
PIPELINE_TURN_RANGES = {"barge_in_min_ms": (0, 2000), "max_call_s": (30, 14400), "filler_ms": (300, 5000),
                        "apology_ms": (1000, 15000)}
TURN_FIELDS = FLUX_TURN_FIELDS | {"barge_in"} | frozenset(PIPELINE_TURN_RANGES)


def _flag(value: Any, field: str) -> bool:
    """A boolean from JSON (true/false) or a form ("on", "true", "1", "off", "false", "0")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("on", "true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("off", "false", "0", "no", ""):
        return False
    raise ValidationError(f"{field} must be true or false", field=field)


def _turn_fields(turn: Any, prefix: str, cfg: AIConfig | None) -> dict[str, Any]:
    """Turn settings: Flux's (``eager_eot_threshold`` None/""/"off" turns eager end-of-turn off)
    and the pipeline's (barge-in, call length, filler/apology timing). Omitted fields keep their
    value; the cross-field rules (eager <= eot, filler < apology) are checked against the locked row."""
    turn = inputs.obj(turn, prefix.rstrip(".") or "turn")
    inputs.only_keys(turn, TURN_FIELDS, prefix.rstrip("."))
    fields: dict[str, Any] = {}
    if "eot_threshold" in turn:
        fields["eot_threshold"] = inputs.number(turn["eot_threshold"], f"{prefix}eot_threshold", 0.5, 1.0)
    if "eager_eot_threshold" in turn:
        eager = turn["eager_eot_threshold"]
        fields["eager_eot_threshold"] = None if eager is None or (isinstance(eager, str) and eager.strip() in (
            "", "off")) else inputs.number(eager, f"{prefix}eager_eot_threshold", 0.3, 0.9)
    if "eot_timeout_ms" in turn:
        fields["eot_timeout_ms"] = inputs.number(turn["eot_timeout_ms"], f"{prefix}eot_timeout_ms", 500, 60000,
                                                 integer=True)
    if "barge_in" in turn:
        fields["barge_in"] = _flag(turn["barge_in"], f"{prefix}barge_in")
    for name, (lo, hi) in PIPELINE_TURN_RANGES.items():
        if name in turn:
            fields[name] = inputs.number(turn[name], f"{prefix}{name}", lo, hi, integer=True)
    if not fields:
        raise ValidationError(f"give at least one of {', '.join(sorted(TURN_FIELDS))}",
                              field=prefix.rstrip(".") or None)
    if cfg is not None:
        eot = fields.get("eot_threshold", cfg.eot_threshold)
        eager = fields.get("eager_eot_threshold", cfg.eager_eot_threshold)
        if eager is not None and eager > eot:
            raise ValidationError(f"eager_eot_threshold ({eager:g}) must not exceed eot_threshold ({eot:g})",
                                  field=f"{prefix}eager_eot_threshold")
        filler = fields.get("filler_ms", cfg.filler_ms)
        apology = fields.get("apology_ms", cfg.apology_ms)
        if filler >= apology:
            bad = "filler_ms" if "filler_ms" in fields else "apology_ms"
            raise ValidationError(f"filler_ms ({filler}) must be less than apology_ms ({apology})",
                                  field=f"{prefix}{bad}")
    return fields


def as_validation_error(exc: InputError) -> ValidationError:
    """The services' one error type, whichever layer found the problem."""
    return exc if isinstance(exc, ValidationError) else ValidationError(str(exc), field=exc.field)


def _validated_fields(parts: dict[str, tuple[Any, str]], cfg: AIConfig | None) -> dict[str, Any]:
    if not parts:
        raise ValidationError("give one or more of llm, tts, turn")
    fields: dict[str, Any] = {}
    try:
        for part, (value, prefix) in parts.items():
            if part == "llm":
                fields.update(_llm_fields(value, prefix))
            elif part == "tts":
                fields.update(_tts_fields(value, prefix))
            else:
                fields.update(_turn_fields(value, prefix, cfg))
    except InputError as exc:
        raise as_validation_error(exc) from None
    return fields


_UNSET: Any = object()


def _parts(llm: Any, tts: Any, turn: Any, flat: bool = False) -> dict[str, tuple[Any, str]]:
    given = {"llm": llm, "tts": tts, "turn": turn}
    return {k: (v, "" if flat else f"{k}.") for k, v in given.items() if v is not _UNSET}


def check_config(*, llm: Any = _UNSET, tts: Any = _UNSET, turn: Any = _UNSET) -> None:
    """Raise ValidationError if ``update_config`` would refuse these parts (no database write):
    for forms that want to show the error on the field before anything is saved."""
    _validated_fields(_parts(llm, tts, turn), get_ai_config())


def update_config(*, llm: Any = _UNSET, tts: Any = _UNSET, turn: Any = _UNSET, user=None,
                  source: str = "api") -> dict:
    """The one write path for the global AI config: page, API, WebSocket and admin all end here.

    ``llm={"provider", "model"}``, ``tts={"provider", "voice_id"}``, ``turn={...TURN_FIELDS}``;
    give any of them. All parts are validated inside the row lock and saved in one transaction
    with one version bump, one history batch and one broadcast — or nothing is saved.
    """
    return _apply(_parts(llm, tts, turn), user=user, source=source)


def update_llm(*, provider: Any, model: Any, user=None, source: str = "api") -> dict:
    return _apply(_parts({"provider": provider, "model": model}, _UNSET, _UNSET, flat=True), user=user,
                  source=source)


def update_tts_voice(*, provider: Any, voice_id: Any, user=None, source: str = "api") -> dict:
    return _apply(_parts(_UNSET, {"provider": provider, "voice_id": voice_id}, _UNSET, flat=True), user=user,
                  source=source)


def update_turn(*, user=None, source: str = "api", **turn: Any) -> dict:
    """``update_config(turn=...)`` with the turn fields as keywords (unknown ones are refused)."""
    return _apply(_parts(_UNSET, _UNSET, turn, flat=True), user=user, source=source)
