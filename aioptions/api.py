"""/api/v1/ai-options/* : the catalog, providers, and the global config (thin views)."""

from __future__ import annotations

from django.http import JsonResponse

from . import inputs, services
from .http import api_view, parse_json_object
from .selectors import config_dict, providers_dict, voices_list


@api_view(methods=("GET",), open_on_loopback=True)
def voices(request):
    return JsonResponse(voices_list(), safe=False)


@api_view(methods=("GET",), open_on_loopback=True)
def providers(request):
    return JsonResponse(providers_dict())


@api_view(methods=("GET", "POST"), open_on_loopback=True)
def config(request):
    """GET the config. POST ``{"llm": {...}, "tts": {...}, "turn": {...}}`` (any of them; staff,
    CSRF-checked for a session) — all parts or nothing, through ``services.update_config``."""
    if request.method == "GET":
        return JsonResponse(config_dict())
    data = parse_json_object(request)
    inputs.only_keys(data, {"llm", "tts", "turn"})
    if not data:
        raise services.ValidationError("give one or more of llm, tts, turn")
    result = services.update_config(**data, user=request.api_user, source="api")
    return JsonResponse({"status": "ok", "config": result["config"]})
