"""Runs the SIP gateway with Django: Call rows at call start/answer/end, campaign routing, SIP
accounts (applied live), this process's BridgeNode row and crash recovery. The only telephony
module besides the pipeline store that touches the ORM, always through services/selectors in a
worker thread, never on the packet path.
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

from campaigns.outbound import route
from telephony import services
from telephony.agents import AGENTS
from telephony.bridge.accounts import LiveAccounts
from telephony.bridge.config import build_policy, is_loopback, parse_advertise
from telephony.bridge.node import BridgeNodeLease
from telephony.bridge.outbound import OutboundCalls
from telephony.media.call import CallInfo, LiveCall
from telephony.media.fleet import FleetGateway
from telephony.media.gateway import GatewayHooks
from telephony.metrics.runtime import ProcessRuntime
from telephony.sip.policy import SipPolicy
from telephony.sip.uac import OutboundTarget

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


def _write_status_file(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)


_PRELOAD = ("telephony.bridge.dialer", "telephony.actions.webhooks", "telephony.bridge.control")
_PRELOAD_AGENT = {"pipeline": ("telephony.pipeline.agent",), "greeting": ("telephony.agents.greeting",)}


def _preload(agent: str) -> None:
    """Import what calls and start-up tasks would otherwise import on the event loop."""
    import importlib

    for name in _PRELOAD + _PRELOAD_AGENT.get(agent, ()):
        importlib.import_module(name)


class BridgeRunner:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 5060, rtp_ports: tuple[int, int] = (10000, 20000),
                 agent: str = "echo", max_calls: int = 100, ring_ms: int = 0, rtp_timeout_s: float | None = None,
                 agent_options: dict | None = None, publish_heartbeat: bool = False,
                 advertise: str | None = None, hold_timeout_s: float | None = None,
                 trusted: str | list[str] | None = None, policy: SipPolicy | None = None,
                 accounts_poll_s: float = 2.0, node_beat_s: float = 2.0, proxies: tuple = (),
                 dialer: bool | None = None, outbound_proxy: tuple[str, int] | None = None) -> None:
        """advertise/hold_timeout_s/trusted default to the SIP_* settings; a bad value raises
        ValueError (the command turns it into a CommandError). ``outbound_proxy`` (ip, port): calls
        to registered extensions go there (fleet: phones register with Kamailio, not with us)."""
        self.publish_heartbeat = publish_heartbeat
        self._beat: asyncio.Task | None = None
        self.runtime = ProcessRuntime()  # loop-lag monitor, provider warm-up and pools (issue 18)
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r} (known: {', '.join(sorted(AGENTS))})")
        self.agent = agent
        self.agent_options = {"cache_dir": Path(settings.MEDIA_ROOT) / "greetings", **(agent_options or {})}
        self.advertise = parse_advertise(settings.SIP_ADVERTISE if advertise is None else advertise)
        self.policy = policy or build_policy(trusted=trusted, hold_timeout_s=hold_timeout_s)
        self.accounts = LiveAccounts(loopback=is_loopback(host), poll_s=accounts_poll_s)
        self.node = BridgeNodeLease(host=host, port=port, advertised=self.advertise, beat_s=node_beat_s,
                                    max_calls=max_calls, live_calls=lambda: self.gateway.active_calls)
        hooks = GatewayHooks(on_call_started=self._started, on_call_answered=self._answered,
                             on_call_ended=self._ended, transfer_target=self._transfer_target,
                             lookup_ha1=self.accounts.ha1,
                             open_mode=self.accounts.open_mode)
        # FleetGateway = the front door plus --trusted-proxy and draining (inert without them)
        self.gateway = FleetGateway(
            proxies=proxies, host=host, port=port, rtp_ports=rtp_ports, agent_factory=self._make_agent, hooks=hooks,
            max_calls=max_calls, rtp_timeout_s=rtp_timeout_s or settings.SIP_RTP_TIMEOUT_S, ring_ms=ring_ms,
            realm=settings.SIP_REALM, recordings_dir=Path(settings.MEDIA_ROOT) / "recordings",
            policy=self.policy, advertise=self.advertise)
        self.outbound_proxy = outbound_proxy
        self.outbound = OutboundCalls(self)  # trunks, routing and caps of the calls this bridge places
        self.control = None  # loopback control channel (manage.py dial), run_sip_bridge only
        self.dialer = None  # the campaign dialer (telephony.bridge.dialer): on in run_sip_bridge
        self.dialer_enabled = dialer
        self.webhooks = None  # the post-call webhook retry worker (WEBHOOK_WORKER), started with the bridge

    async def start(self) -> None:
        """Load accounts, claim a node row and finalise what dead bridges left open, then listen."""
        if not is_loopback(self.gateway.host):
            log.warning("SIP bridge bound to %s: reachable from the network. Only SIP accounts (admin) may "
                        "place calls; with none, every call is refused.", self.gateway.host)
        # modules imported lazily on first use, imported now while no call is waiting: after the
        # gateway listens, the first pipeline call's import (~0.4 s) and the webhook worker's (~0.8 s
        # on a busy 2-core box, compiling without .pyc) stalled every caller's media (issue 18 profile)
        await asyncio.to_thread(_preload, self.agent)
        await self.accounts.start()
        try:
            await self.gateway.start()
            await self.node.start(port=self.gateway.port)  # the real port when 0 was asked for
        except BaseException:
            await self.accounts.stop()
            if self.gateway.transport is not None:
                await self.gateway.aclose()
            raise
        await self.runtime.start(pipeline=self.agent == "pipeline", gateway=self.gateway)
        if self.agent == "pipeline" and not settings.DEEPGRAM_API_KEY:
            # no Flux key: calls use the offline recogniser; load Whisper now, not on the first call
            from aioptions.providers.offline_stt import warm_up

            await asyncio.to_thread(warm_up)
            log.info("offline recogniser loaded (no DEEPGRAM_API_KEY)")
        await self.outbound.start()
        if self.publish_heartbeat if self.dialer_enabled is None else self.dialer_enabled:
            from telephony.bridge.dialer import Dialer

            self.dialer = Dialer(node=self.node.name, place=self.outbound.place,
                                 node_timeout_s=settings.SIP_NODE_TIMEOUT_S)
            self.dialer.start()
        if settings.WEBHOOK_WORKER:  # retries of pending deliveries; its ORM work runs in worker threads
            from telephony.actions.webhooks import WebhookWorker

            self.webhooks = WebhookWorker()
            self.webhooks.start()
        if self.publish_heartbeat:
            from telephony.bridge.control import ControlServer

            self.control = ControlServer(self.outbound)
            await self.control.start()
            self._beat = asyncio.create_task(self._heartbeat())
        log.info("agent: %s; node %s; SIP auth: %s", self.agent, self.node.name, self.accounts.mode)

    @property
    def recovered(self) -> int:
        """Calls of dead bridges this bridge finalised at start."""
        return self.node.recovered

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.accounts.stop()
        if self.dialer is not None:
            await self.dialer.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.control is not None:
            await self.control.stop()
        await self.outbound.stop()
        await self.gateway.aclose()  # finalises every call of ours first ...
        await self.node.stop()  # ... so a stopped node never leaves an open row behind
        await self.runtime.stop()
        if self.publish_heartbeat:
            await asyncio.to_thread(heartbeat_path().unlink, missing_ok=True)

    async def _heartbeat(self) -> None:
        """Let a web process in another process see this bridge (GET /api/v1/sip/status)."""
        path = heartbeat_path()
        while True:
            data = {**self.status(), "pid": os.getpid(), "at": time.time()}
            try:
                await asyncio.to_thread(_write_status_file, path, data)
            except OSError as exc:
                log.warning("cannot write %s: %s", path, exc)
            await asyncio.sleep(2.0)

    # --- hooks ----------------------------------------------------------------------------
    def _make_agent(self, call: LiveCall):
        return AGENTS[self.agent](call, self.agent_options)

    async def _started(self, info: CallInfo) -> dict:
        self.runtime.call_started()
        if info.extra.get("direction") == "outbound":
            return await self.outbound.started(info)
        return await sync_to_async(services.start_call)(sip_call_id=info.call_id, caller_uri=info.caller_uri,
                                                        dialed=info.dialed_user, codec=info.codec, agent=self.agent,
                                                        bridge_node=self.node.id)

    async def _answered(self, call: LiveCall) -> None:
        if call.record_id:
            recorder = getattr(call.session, "recorder", None)
            await sync_to_async(services.mark_answered)(call.record_id,
                                                        recording=recorder.path if recorder else None)

    async def _ended(self, call: LiveCall, stats: dict, recording: Path | None) -> None:
        self.runtime.call_ended(call)
        if call.record_id is None:
            log.warning("call %s ended without a Call record", call.call_id)
            return
        updated = await sync_to_async(services.finish_call)(call.record_id, reason=call.end_reason or "error",
                                                            stats=stats, recording=recording, outcome=call.outcome,
                                                            sip_status=call.sip_status)
        if call.direction == "outbound":
            await self.outbound.ended(call)
        if updated != 1:
            log.error("call %s: Call record %s was not finalised", call.call_id, call.record_id)

    async def _transfer_target(self, call: LiveCall, target: str) -> OutboundTarget:
        """Where a transfer goes: the outbound routing rules (a number only through the campaign's
        trunk and its allowed prefixes, never a DNC number; a SIP URI; a registered extension)."""
        plan = await sync_to_async(route)(target, call.campaign_id)
        dest = await self.outbound.target_for(plan)
        dest.extra = {"campaign_id": call.campaign_id, "contact_id": None, "variables": {},
                      "trunk_id": plan.trunk.get("id"), "route": plan.kind}
        return dest

    def status(self) -> dict:
        gw = self.gateway
        # never "running" when nothing listens: a failed SIP socket says so
        return {"status": "running" if gw.listening else "failed", "host": gw.host, "port": gw.port,
                "bind": f"{gw.host}:{gw.port}", "advertised": getattr(gw, "advertised", self.advertise),
                "node": self.node.name, "node_id": self.node.id, "auth": self.accounts.mode,
                "draining": gw.draining, "trusted_proxies": [str(p) for p in gw.proxies],
                "calls": gw.active_calls, "agent": self.agent, "loop_lag": self.runtime.stats(),
                "gc": self.runtime.gc.stats(), **gw.stats}
