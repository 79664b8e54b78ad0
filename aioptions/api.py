"""/api/v1/ai-options/* : the catalog, providers, and the global config (thin views)."""

from __future__ import annotations

from django.db import transaction
from django.http import JsonResponse

from . import services
from .http import api_view, json_error, parse_json_object
from .selectors import config_dict, providers_dict, voices_list


@api_view(methods=("GET",), open_on_loopback=True)
def voices(request):
    return JsonResponse(voices_list(), safe=False)


@api_view(methods=("GET",), open_on_loopback=True)
def providers(request):
    return JsonResponse(providers_dict())


@api_view(methods=("GET", "POST"), open_on_loopback=True, write=False)
def config(request):
    """GET the config. POST ``{"llm": {...}}`` / ``{"tts": {...}}`` / ``{"turn": {...}}`` (staff)."""
    if request.method == "GET":
        return JsonResponse(config_dict())
    if request.api_user is None:
        return json_error("authentication required (staff session or Bearer token)", 401)
    return _update(request, parse_json_object(request))


def _update(request, data: dict) -> JsonResponse:
    known = {"llm", "tts", "turn"}
    unknown = set(data) - known
    if unknown or not data:
        return json_error(f"give one or more of llm, tts, turn (unknown: {', '.join(sorted(unknown)) or '-'})")
    for key in ("llm", "tts", "turn"):
        if key in data and not isinstance(data[key], dict):
            return json_error(f"{key} must be an object")
    try:
        # Validate everything before writing anything: one bad part saves nothing.
        _validate_all(data)
        kw = {"user": request.api_user, "source": "api"}
        with transaction.atomic():  # all parts or nothing
            _write(data, kw)
    except services.ValidationError as exc:
        return json_error(str(exc))
    return JsonResponse({"status": "ok", "config": config_dict()})


def _write(data: dict, kw: dict) -> None:
    if "llm" in data:
        services.update_llm(provider=data["llm"].get("provider"), model=data["llm"].get("model"), **kw)
    if "tts" in data:
        services.update_tts_voice(provider=data["tts"].get("provider"),
                                  voice_id=data["tts"].get("voice_id"), **kw)
    if "turn" in data:
        services.update_turn(**_turn_kwargs(data["turn"]), **kw)


def _turn_kwargs(turn: dict) -> dict:
    allowed = {"eot_threshold", "eager_eot_threshold", "eot_timeout_ms"}
    extra = set(turn) - allowed
    if extra:
        raise services.ValidationError(f"unknown turn field(s): {', '.join(sorted(extra))}")
    return dict(turn)


def _validate_all(data: dict) -> None:
    from . import catalog

    try:
        if "llm" in data:
            catalog.validate_llm(data["llm"].get("provider"), data["llm"].get("model"))
        if "tts" in data:
            catalog.validate_voice(data["tts"].get("provider"), data["tts"].get("voice_id"))
    except catalog.CatalogError as exc:
        raise services.ValidationError(str(exc)) from None
    if "turn" in data:
        _turn_kwargs(data["turn"])
