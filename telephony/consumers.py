"""WebSocket /ws/calls/<id>/: live transcript and per-turn waterfall of one call (staff only).

The pipeline publishes to group ``call_<id>`` (across processes with the Redis channel layer);
this consumer renders each update as an HTML fragment the htmx ws extension swaps in."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from aioptions.inputs import PK_MAX


class CallLiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff):
            await self.close(code=4403)
            return
        call_id = int(self.scope["url_route"]["kwargs"]["call_id"])
        if not 1 <= call_id <= PK_MAX:  # a group name has at most 100 characters
            await self.close(code=4404)
            return
        self.group = f"call_{call_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return  # read-only socket

    async def call_update(self, event: dict) -> None:
        html = render_to_string("telephony/_live_update.html", {"p": event["payload"]})
        await self.send(text_data=html)
