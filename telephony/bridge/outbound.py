"""The bridge's outbound side: trunks kept current (IP-auth addresses, registrations), a
destination turned into something ``SIPMediaGateway.dial()`` can dial, the trunk's caps, and the
Call-row hooks of placed calls.

Order of checks for every call, all before any SIP leaves: route (allowlist, do-not-call, a
trunk at all — ``campaigns.outbound.route``), the trunk's concurrent-call cap, name resolution
(``getaddrinfo`` in a worker thread, never on the event loop), then the trunk's calls-per-second
pacing. The ORM is only touched through ``sync_to_async``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from campaigns import trunks as trunk_services
from campaigns.models import Trunk
from campaigns.outbound import Refused, RoutePlan, route
from telephony import services
from telephony.media.call import CallInfo, LiveCall
from telephony.media.outbound import DialResult
from telephony.media.registration import RegistrationTarget, TrunkRegistration
from telephony.sip.message import SipParseError, host_port_of, ip_literal
from telephony.sip.uac import OutboundTarget

log = logging.getLogger("telephony.bridge")
__all__ = ["OutboundCalls", "Refused", "TrunkFull", "resolve"]


class TrunkFull(Refused):
    """The trunk is at its concurrent-call cap: nothing was sent; try again later."""


async def resolve(host: str, port: int) -> str:
    """An IPv4 address for ``host``: literal as is, a name through getaddrinfo in a worker thread."""
    ip = ip_literal(host)
    if ip is not None:
        return ip
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    if not infos:
        raise Refused(f"cannot resolve {host}")
    return infos[0][4][0]


def _trunk_rows() -> list[dict]:
    return list(Trunk.objects.filter(active=True).values(
        "id", "host", "port", "username", "password", "register", "register_expires", "ip_auth", "inbound_ips"))


class OutboundCalls:
    def __init__(self, runner, *, poll_s: float = 2.0) -> None:
        self.runner = runner
        self.gw = runner.gateway
        self.poll_s = poll_s
        self.registrations: dict[int, tuple[tuple, TrunkRegistration]] = {}
        self._setting_up: dict[int, int] = {}  # trunk id -> calls between route() and the end of dial()
        self._next_slot: dict[int, float] = {}  # trunk id -> loop time the next INVITE may leave
        self._task: asyncio.Task | None = None

    # --- lifecycle: trunks kept current ---------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:  # noqa: BLE001 - a bad trunk row must not stop the bridge
            log.exception("loading trunks failed")
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for _key, reg in self.registrations.values():
            await reg.stop()
        self.registrations.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001
                log.exception("refreshing trunks failed")

    async def refresh(self) -> None:
        """IP-auth addresses into the gateway; registrations started, changed or stopped."""
        rows = await sync_to_async(_trunk_rows)()
        ips: set[str] = set()
        for t in rows:
            if t["ip_auth"]:
                listed = [p.strip() for p in t["inbound_ips"].split(",") if p.strip()]
                for host in listed or [t["host"]]:
                    try:
                        ips.add(await resolve(host, t["port"]))
                    except Refused as exc:
                        log.warning("trunk %s: %s", t["id"], exc)
        self.gw.trunk_ips = frozenset(ips)
        wanted = {t["id"]: t for t in rows if t["register"]}
        for tid in list(self.registrations):
            key, reg = self.registrations[tid]
            t = wanted.get(tid)
            if t is None or key != self._reg_key(t):
                await reg.stop()
                del self.registrations[tid]
        for tid, t in wanted.items():
            if tid not in self.registrations:
                await self._register(t)

    @staticmethod
    def _reg_key(t: dict) -> tuple:
        return (t["host"], t["port"], t["username"], t["password"], t["register_expires"])

    async def _register(self, t: dict) -> None:
        tid = t["id"]

        def report(status: str, error: str, granted: int | None) -> None:
            until = timezone.now() + timedelta(seconds=granted) if granted else None
            asyncio.get_running_loop().create_task(sync_to_async(trunk_services.set_registration)(
                tid, status=status, error=error, until=until))

        try:
            ip = await resolve(t["host"], t["port"])
        except Refused as exc:
            await sync_to_async(trunk_services.set_registration)(tid, status="failed", error=str(exc))
            return
        reg = TrunkRegistration(self.gw, RegistrationTarget((ip, t["port"]), t["host"], t["username"],
                                                            t["password"], t["register_expires"]), report)
        self.registrations[tid] = (self._reg_key(t), reg)
        await sync_to_async(trunk_services.set_registration)(tid, status="registering")
        reg.start()

    # --- placing a call ----------------------------------------------------------------------
    def active_on_trunk(self, trunk_id: int) -> int:
        up = sum(1 for d in self.gw.dialogs.values() if d.role == "uac" and d.state in ("answered", "confirmed")
                 and d.call is not None and d.call.info.extra.get("trunk_id") == trunk_id)
        return up + self._setting_up.get(trunk_id, 0)

    async def _pace(self, trunk_id: int, cps: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next_slot.get(trunk_id, 0.0))
        self._next_slot[trunk_id] = at + 1.0 / max(cps, 0.01)
        if at > now:
            await asyncio.sleep(at - now)

    async def target_for(self, plan: RoutePlan) -> OutboundTarget:
        if plan.kind == "extension":
            proxy = getattr(self.runner, "outbound_proxy", None)
            if proxy is not None:  # fleet: the proxy's usrloc knows the phone; it answers 404 if nobody is there
                ip, port = proxy
                host = f"[{ip}]" if ":" in ip else ip
                return OutboundTarget(request_uri=f"sip:{plan.dest}@{host}:{port}", dest=(ip, port), dialed=plan.dest)
            found = self.gw.registrar.find_user(plan.dest)
            if not found:
                raise Refused(f"extension {plan.dest} is not registered to this bridge")
            uri, source = found[0]
            return OutboundTarget(request_uri=uri, dest=source, dialed=plan.dest)  # to where it registered from
        if plan.kind == "uri":
            try:
                host, port = host_port_of(plan.request_uri)
            except SipParseError as exc:
                raise Refused(f"bad SIP URI: {exc}") from None
            return OutboundTarget(request_uri=plan.request_uri, dest=(await resolve(host, port), port))
        t = plan.trunk
        return OutboundTarget(request_uri=plan.request_uri, dest=(await resolve(plan.host, plan.port), plan.port),
                              dialed=plan.dest, from_user=t["from_user"], from_display=t["from_display"], pai=t["pai"],
                              auth_user=t["username"], auth_password=t["password"])

    async def place(self, dest: str, campaign_id: int | None, *, contact_id: int | None = None,
                    variables: dict | None = None, ring_timeout_s: float = 30.0, on_step: Callable | None = None,
                    on_accepted: Callable[[RoutePlan], None] | None = None) -> DialResult:
        """Route, check, pace and dial. Refused (nothing sent) or the DialResult."""
        plan = await sync_to_async(route)(dest, campaign_id)
        tid = plan.trunk.get("id")
        if tid is not None:
            if self.active_on_trunk(tid) >= plan.trunk["max_concurrent"]:
                raise TrunkFull(f"trunk {plan.trunk['name']!r} is at its {plan.trunk['max_concurrent']} "
                                "concurrent calls")
            self._setting_up[tid] = self._setting_up.get(tid, 0) + 1
        try:
            target = await self.target_for(plan)
            target.extra = {"campaign_id": campaign_id, "contact_id": contact_id, "variables": variables or {},
                            "trunk_id": tid, "route": plan.kind}
            if on_accepted is not None:
                on_accepted(plan)
            if tid is not None:
                await self._pace(tid, plan.trunk["cps"])
            return await self.gw.dial(target, ring_timeout_s=ring_timeout_s, on_step=on_step)
        finally:
            if tid is not None:
                self._setting_up[tid] -= 1

    # --- Call-row hooks of placed calls -----------------------------------------------------
    async def started(self, info: CallInfo) -> dict:
        x = info.extra
        meta = await sync_to_async(services.start_outbound_call)(
            sip_call_id=info.call_id, caller_uri=info.caller_uri, dialed=info.dialed_user, codec=info.codec,
            agent=self.runner.agent, bridge_node=self.runner.node.id, campaign_id=x.get("campaign_id"),
            contact_id=x.get("contact_id"), variables=x.get("variables"))
        if meta.get("amd_mode") == "message" and meta.get("voicemail_message"):
            from telephony.agents.greeting import synthesize_wav  # espeak-ng as a program, cached by text

            try:  # rendered while the phone rings, so the message is ready at the beep
                meta["voicemail_wav"] = str(await synthesize_wav(meta["voicemail_message"],
                                                                 self.runner.agent_options["cache_dir"]))
            except (OSError, RuntimeError, TimeoutError) as exc:
                log.warning("voicemail message not rendered: %s", exc)
        return meta

    async def ended(self, call: LiveCall) -> None:
        """After the Call row is final: the contact's attempt is recorded (the dialer's retries)."""
        contact_id = call.info.extra.get("contact_id")
        if contact_id and self.runner_dialer is not None:
            await self.runner_dialer.finished(contact_id, call.outcome or "failed", call.record_id)

    @property
    def runner_dialer(self):
        return getattr(self.runner, "dialer", None)
