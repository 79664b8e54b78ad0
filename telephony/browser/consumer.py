"""WebSocket /ws/talk/?campaign=<id>: one browser call through the voice pipeline (staff only).

Binary messages are audio (mu-law, 8 kHz, 20 ms frames) both ways; text messages are JSON:
the page sends ``{"action": "hangup"}``; the server sends ``started`` (call id, greeting, call
page), ``update`` (the pipeline's live transcript and each turn's waterfall, from the call's
Channels group), ``clear`` (barge-in: drop buffered audio) and ``ended``. The socket's origin is
checked by the ASGI router (AllowedHostsOriginValidator) like every other socket; the session must
be a staff user's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from aioptions import inputs
from telephony.agents import AGENTS
from telephony.media.recording import StereoRecorder, shared_writer

from . import services
from .media import BrowserCall, media_clock

log = logging.getLogger("telephony.browser")


def _campaign_id(scope) -> int | None:
    qs = scope.get("query_string", b"").decode("latin-1")
    for part in qs.split("&"):
        key, _, value = part.partition("=")
        if key == "campaign" and value:
            return inputs.pk(value, "campaign")
    return None


class BrowserCallConsumer(AsyncWebsocketConsumer):
    call: BrowserCall | None = None
    agent_task: asyncio.Task | None = None
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff):
            await self.close(code=4403)
            return
        try:
            campaign_id = _campaign_id(self.scope)
            meta = await sync_to_async(services.start_browser_call)(username=user.get_username(),
                                                                    campaign_id=campaign_id)
        except (inputs.InputError, services.NoSuchCampaign):
            await self.close(code=4404)
            return
        self.meta = meta
        self._out: asyncio.Queue = asyncio.Queue()
        await self.accept()
        self.sender = asyncio.create_task(self._send_loop())
        recorder = StereoRecorder(meta["recording"], "PCMU", writer=shared_writer())
        self.call = BrowserCall(call_id=meta["call_id"], caller_uri=f"browser:{user.get_username()}",
                                record_id=meta["record_id"], campaign_id=meta["campaign_id"],
                                send_audio=self._out.put_nowait,
                                send_control=lambda msg: self._out.put_nowait(json.dumps(msg)),
                                recorder=recorder, clock=media_clock())
        self.call.context = dict(meta, recording=str(meta["recording"]))
        self.group = f"call_{meta['record_id']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send(text_data=json.dumps({
            "type": "started", "call": meta["record_id"], "campaign": meta["campaign_name"],
            "greeting": meta["greeting"], "call_url": f"/calls/{meta['record_id']}/"}))
        self.agent_task = asyncio.create_task(self._run_agent())

    async def _send_loop(self) -> None:
        """Audio frames (bytes) and control messages (str) to the page, in order, never blocking the clock."""
        with contextlib.suppress(Exception):
            while True:
                item = await self._out.get()
                if item is None:
                    return
                if isinstance(item, bytes):
                    await self.send(bytes_data=item)
                else:
                    await self.send(text_data=item)

    async def _run_agent(self) -> None:
        call = self.call
        if not settings.DEEPGRAM_API_KEY:  # load Whisper off the loop before the first turn needs it
            from aioptions.providers.offline_stt import warm_up

            await asyncio.to_thread(warm_up)
        agent = AGENTS["pipeline"](call, {"cache_dir": Path(settings.MEDIA_ROOT) / "greetings"})
        try:
            await agent.run(call)
        except Exception:  # noqa: BLE001 - like the bridge: log, end this call only
            log.exception("browser call %s: agent failed", call.call_id)
            call.mark_ended("error")
        finally:
            call.mark_ended(call.end_reason or "agent")
            await self._finish()

    async def _finish(self) -> None:
        call = self.call
        path = await call.recorder.aclose() if call.recorder is not None else None
        try:
            await sync_to_async(services.finish_browser_call)(call.record_id, reason=call.end_reason or "error",
                                                              stats=call.stats(), recording=path)
        except Exception:  # noqa: BLE001
            log.exception("browser call %s: Call row not finalised", call.call_id)
        self._out.put_nowait(json.dumps({"type": "ended", "reason": call.end_reason, "call": call.record_id,
                                         "call_url": f"/calls/{call.record_id}/"}))
        self._out.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sender, 2.0)
            await self.close()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.call is None:
            return
        if bytes_data is not None:
            self.call.feed(bytes_data)
            return
        try:
            message = inputs.parse_json(text_data or "", max_bytes=4096, what="message")
        except inputs.InputError:
            return
        if isinstance(message, dict) and message.get("action") == "hangup":
            self.call.mark_ended("bye")

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.call is not None:
            self.call.mark_ended("bye")  # the page closed: the caller hung up
            if self.agent_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self.agent_task), 5.0)

    async def call_update(self, event: dict) -> None:
        """The pipeline's live transcript and turn waterfall (group ``call_<id>``), as JSON."""
        self._out.put_nowait(json.dumps({"type": "update", **event["payload"]}, default=str))
