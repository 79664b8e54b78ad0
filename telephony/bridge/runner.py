"""Runs the SIP gateway with Django: Call rows at call start/answer/end, campaign routing, SIP
accounts. The only telephony module besides the pipeline store that touches the ORM, always
through services/selectors in a worker thread, never on the packet path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

from telephony import selectors, services
from telephony.agents import AGENTS
from telephony.media.call import CallInfo, LiveCall
from telephony.media.gateway import GatewayHooks, SIPMediaGateway

log = logging.getLogger("telephony.bridge")


def heartbeat_path() -> Path:
    return Path(settings.VAR_DIR) / "sip_bridge.json"


def bridge_process_status() -> dict | None:
    """The status a separate run_sip_bridge process last published, if it is alive."""
    try:
        data = json.loads(heartbeat_path().read_text())
    except (OSError, ValueError):
        return None
    if time.time() - data.get("at", 0) > 6:
        return None
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return {**data, "where": "run_sip_bridge process"}


class BridgeRunner:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 5060, rtp_ports: tuple[int, int] = (10000, 20000),
                 agent: str = "echo", max_calls: int = 100, ring_ms: int = 0, rtp_timeout_s: float | None = None,
                 agent_options: dict | None = None, publish_heartbeat: bool = False) -> None:
        self.publish_heartbeat = publish_heartbeat
        self._beat: asyncio.Task | None = None
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r} (known: {', '.join(sorted(AGENTS))})")
        self.agent = agent
        self.agent_options = {"cache_dir": Path(settings.MEDIA_ROOT) / "greetings", **(agent_options or {})}
        self._accounts: dict[str, str] = {}
        self._accounts_at = 0.0
        hooks = GatewayHooks(on_call_started=self._started, on_call_answered=self._answered,
                             on_call_ended=self._ended, lookup_ha1=self._ha1, open_mode=self._open_mode)
        self.gateway = SIPMediaGateway(
            host=host, port=port, rtp_ports=rtp_ports, agent_factory=self._make_agent, hooks=hooks,
            max_calls=max_calls, rtp_timeout_s=rtp_timeout_s or settings.SIP_RTP_TIMEOUT_S, ring_ms=ring_ms,
            realm=settings.SIP_REALM, recordings_dir=Path(settings.MEDIA_ROOT) / "recordings")

    async def start(self) -> None:
        if self.gateway.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("SIP bridge bound to %s: reachable from the network. Create SIP accounts (admin) so "
                        "strangers cannot place calls on your AI/provider bill (toll fraud).", self.gateway.host)
        await self._refresh_accounts(force=True)
        await self.gateway.start()
        if self.agent == "pipeline" and not settings.DEEPGRAM_API_KEY:
            # no Flux key: calls use the offline recogniser; load Whisper now, not on the first call
            from aioptions.providers.offline_stt import warm_up

            await asyncio.to_thread(warm_up)
            log.info("offline recogniser loaded (no DEEPGRAM_API_KEY)")
        if self.publish_heartbeat:
            self._beat = asyncio.create_task(self._heartbeat())
        log.info("agent: %s; SIP auth: %s", self.agent,
                 "open (no SIP accounts configured)" if not self._accounts else f"{len(self._accounts)} account(s)")

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.gateway.aclose()
        heartbeat_path().unlink(missing_ok=True)

    async def _heartbeat(self) -> None:
        """Let a web process in another process see this bridge (GET /api/v1/sip/status)."""
        path = heartbeat_path()
        while True:
            data = {**self.status(), "pid": os.getpid(), "at": time.time()}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)
            await asyncio.sleep(2.0)

    # --- hooks ----------------------------------------------------------------------------
    def _make_agent(self, call: LiveCall):
        return AGENTS[self.agent](call, self.agent_options)

    async def _refresh_accounts(self, force: bool = False) -> None:
        if force or time.monotonic() - self._accounts_at > 10:
            self._accounts = await sync_to_async(selectors.sip_accounts_ha1)()
            self._accounts_at = time.monotonic()

    def _ha1(self, user: str) -> str | None:
        asyncio.get_running_loop().create_task(self._refresh_accounts())  # picked up on the next request
        return self._accounts.get(user)

    def _open_mode(self) -> bool:
        return not self._accounts

    async def _started(self, info: CallInfo) -> dict:
        return await sync_to_async(services.start_call)(sip_call_id=info.call_id, caller_uri=info.caller_uri,
                                                        dialed=info.dialed_user, codec=info.codec, agent=self.agent)

    async def _answered(self, call: LiveCall) -> None:
        if call.record_id:
            await sync_to_async(services.mark_answered)(call.record_id)

    async def _ended(self, call: LiveCall, stats: dict, recording: Path | None) -> None:
        if call.record_id is None:
            log.warning("call %s ended without a Call record", call.call_id)
            return
        updated = await sync_to_async(services.finish_call)(call.record_id, reason=call.end_reason or "error",
                                                            stats=stats, recording=recording)
        if updated != 1:
            log.error("call %s: Call record %s was not finalised", call.call_id, call.record_id)

    def status(self) -> dict:
        return {"status": "running", "host": self.gateway.host, "port": self.gateway.port,
                "calls": self.gateway.active_calls, "agent": self.agent, **self.gateway.stats}
