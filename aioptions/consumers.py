"""WebSocket /api/v1/ai-options/ws: the same actions as the page and REST, for integrators.

Thin: parse through the shared input layer (``aioptions.inputs``: size, depth, numbers, strings),
call the service in a thread, reply — errors as ``{"status": "error", "error", "field"}``. Every
successful change reaches every connected client (all tabs, all users) through the ``ai_options``
group as ``config_updated``; the page's HTMX socket gets an HTML fragment instead (``?format=html``).
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from aioptions.campaign_hooks import CampaignNotFound, hooks
from aioptions.logsafe import clip, redact

from . import inputs, services
from .events import CONFIG_GROUP

log = logging.getLogger(__name__)


def _update_llm(data: dict, user) -> dict:
    inputs.only_keys(data, {"action", "provider", "model"})
    return services.update_llm(provider=data.get("provider"), model=data.get("model"), user=user, source="ws")


def _update_tts(data: dict, user) -> dict:
    inputs.only_keys(data, {"action", "provider", "voice_id"})
    return services.update_tts_voice(provider=data.get("provider"), voice_id=data.get("voice_id"),
                                     user=user, source="ws")


def _update_campaign_voice(data: dict, user) -> dict:
    inputs.only_keys(data, {"action", "campaign_id", "provider", "voice_id"})
    return hooks.set_voice(
        campaign_id=data.get("campaign_id"), provider=data.get("provider"),
        voice_id=data.get("voice_id"), user=user, source="ws")


def _update_turn(data: dict, user) -> dict:
    inputs.only_keys(data, services.TURN_FIELDS | {"action"})
    return services.update_turn(**{k: data[k] for k in services.TURN_FIELDS if k in data}, user=user, source="ws")


ACTIONS = {
    "update_llm": _update_llm,
    "update_tts_voice": _update_tts,
    "update_campaign_voice": _update_campaign_voice,
    "update_turn": _update_turn,
}


def _error(action: object, message: str, field: str | None = None) -> dict:
    shown = action if isinstance(action, str) and action in ACTIONS else None
    return {"status": "error", "action": shown, "error": redact(message), "field": field}


class AIOptionsConsumer(AsyncJsonWebsocketConsumer):
    """Every frame gets exactly one reply; no frame, however hostile, closes the socket."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff):
            await self.close(code=4403)
            return
        qs = self.scope.get("query_string", b"").decode("latin-1")
        self.html = "format=html" in qs.split("&")
        await self.channel_layer.group_add(CONFIG_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(CONFIG_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_json(_error(None, "send JSON text frames, not binary"))
            return
        try:
            content = inputs.parse_json(text_data, what="message")
        except inputs.InputError as exc:
            await self.send_json(_error(None, str(exc), exc.field))
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.send_json(_error(None, "message must be a JSON object"))
            return
        if self.html and "action" not in content:
            return  # htmx ws extension form posts are not used on this socket
        action = content.get("action")
        handler = ACTIONS.get(action) if isinstance(action, str) else None
        if handler is None:
            await self.send_json(_error(action, f"unknown action {inputs.show(action)} (known: {', '.join(ACTIONS)})",
                                        "action"))
            return
        data = content.get("data", content)
        if not isinstance(data, dict):
            await self.send_json(_error(action, "data must be an object", "data"))
            return
        try:
            result = await sync_to_async(handler)(data, self.scope["user"])
        except inputs.InputError as exc:
            await self.send_json(_error(action, str(exc), exc.field))
            return
        except CampaignNotFound as exc:
            await self.send_json(_error(action, str(exc), "campaign_id"))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must cost one reply, not the connection
            log.exception("ws action %s failed: %s", action, clip(repr(exc)))
            await self.send_json(_error(action, "internal error"))
            return
        await self.send_json({"status": "ok", "action": action, **result})

    async def config_updated(self, event: dict) -> None:
        payload = event["payload"]
        if self.html:
            html = await sync_to_async(_render_oob)(payload)
            await self.send(text_data=html)
        else:
            await self.send_json({"type": "config_updated", **payload})


def _render_oob(payload: dict) -> str:
    from .views import panel_context

    return render_to_string("aioptions/_live_update.html", panel_context(payload))
