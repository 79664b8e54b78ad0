"""The HTMX AI options page (staff only). Views are thin: they read via selectors, write via
services, and render partials for HTMX requests."""

from __future__ import annotations

import asyncio
import threading

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from aioptions.campaign_hooks import CampaignNotFound, hooks

from . import catalog, services
from .availability import refresh_model_availability
from .inputs import InputError
from .selectors import config_dict, get_ai_config, providers_dict


def _refresh_availability_in_background() -> None:
    threading.Thread(target=lambda: asyncio.run(refresh_model_availability()), daemon=True).start()


def panel_context(payload: dict | None = None) -> dict:
    cfg = get_ai_config()
    provs = providers_dict(cfg)
    tts_keys = {p["id"]: p["key_configured"] for p in provs["tts"]}
    voice_groups = []
    for p in catalog.providers("tts"):
        vs = [v for v in catalog.voices(include_offline=True) if v.provider == p.id]
        voice_groups.append({"provider": p, "voices": vs, "key": tts_keys.get(p.id, False)})
    return {
        "config": config_dict(cfg),
        "providers": provs,
        "voice_groups": voice_groups,
        "voices": catalog.voices(),
        "campaigns": hooks.list_campaigns(),
        "payload": payload,
    }


@staff_member_required
@require_GET
def options_page(request: HttpRequest) -> HttpResponse:
    _refresh_availability_in_background()
    return render(request, "aioptions/page.html", panel_context())


@staff_member_required
@require_GET
def panel(request: HttpRequest) -> HttpResponse:
    return render(request, "aioptions/_panel.html", panel_context())


@staff_member_required
@require_POST
def save(request: HttpRequest) -> HttpResponse:
    """Save the form: LLM (``provider:model``), voice (``provider:voice_id``), or a campaign's voice."""
    post = request.POST
    try:
        if "campaign_id" in post:
            provider, _, voice_id = post.get("campaign_voice", "").partition(":")
            hooks.set_voice(campaign_id=post["campaign_id"], provider=provider,
                                                 voice_id=voice_id, user=request.user, source="page")
            message = "Campaign voice saved."
        else:
            parts = {}
            if "llm" in post:
                provider, _, model = post["llm"].partition(":")
                parts["llm"] = {"provider": provider, "model": model}
            if "voice" in post:
                provider, _, voice_id = post["voice"].partition(":")
                parts["tts"] = {"provider": provider, "voice_id": voice_id}
            services.update_config(**parts, user=request.user, source="page")  # both or neither
            message = "Saved."
    except (InputError, CampaignNotFound) as exc:
        ctx = panel_context()
        ctx.update(flash=str(exc), flash_error=True)
        return render(request, "aioptions/_save_result.html", ctx, status=400)
    ctx = panel_context()
    ctx.update(flash=message, flash_error=False)
    return render(request, "aioptions/_save_result.html", ctx)


def turn_from_post(post) -> dict:
    """The turn form's fields as ``update_config(turn=...)`` takes them. Unticked checkboxes are not
    posted, so "eager on" and "barge-in" are read from their presence; an eager threshold is only
    sent when eager end-of-turn is on."""
    turn = {k: post[k] for k in ("eot_threshold", "eot_timeout_ms", *services.PIPELINE_TURN_RANGES) if k in post}
    turn["eager_eot_threshold"] = post.get("eager_eot_threshold", "") if post.get("eager_on") else None
    turn["barge_in"] = bool(post.get("barge_in"))
    return turn


@staff_member_required
@require_POST
def save_turn(request: HttpRequest) -> HttpResponse:
    """Save the turn settings form through ``update_config`` (the API's path). On an error the form
    is left as the operator typed it and the message names the field."""
    try:
        services.update_config(turn=turn_from_post(request.POST), user=request.user, source="page")
    except InputError as exc:
        ctx = {"flash": str(exc), "flash_error": True, "field": (exc.field or "").removeprefix("turn.")}
        return render(request, "aioptions/_turn_result.html", ctx, status=400)
    if not request.htmx:  # a plain form post (no JavaScript): back to the page
        return redirect("aioptions:page")
    ctx = panel_context()
    ctx.update(flash="Turn settings saved.", flash_error=False)
    return render(request, "aioptions/_turn_result.html", ctx)
