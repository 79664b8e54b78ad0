"""REGISTER as a client: the bridge registers to a SIP trunk (digest on 401/407) and refreshes
the binding before it expires, so the carrier knows where to send inbound calls.

Django-free and sent through the gateway's own socket (one SIP port for everything; the
carrier's responses come back to it and the gateway hands them over by Call-ID). The sleep
between refreshes is injectable, so a test drives a refresh without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aioptions.logsafe import clip
from telephony.sip import timers, uac
from telephony.sip.message import SipMessage, new_branch, new_tag, param

log = logging.getLogger("telephony.bridge")
OnStatus = Callable[[str, str, int | None], None]  # (status, error, seconds granted)
RETRY_S = 30.0


@dataclass
class RegistrationTarget:
    dest: tuple[str, int]  # an IP address (resolved off the loop) and port
    domain: str  # the trunk's host as configured: Request-URI and AOR domain
    username: str
    password: str
    expires: int = 600


class TrunkRegistration:
    def __init__(self, gateway, target: RegistrationTarget, on_status: OnStatus,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.gw, self.target, self.on_status, self.sleep = gateway, target, on_status, sleep
        self.call_id = f"{secrets.token_hex(10)}@talky-reg"
        self.tag = new_tag()
        self.cseq = 0
        self.responses: asyncio.Queue[SipMessage] = asyncio.Queue(8)
        self.task: asyncio.Task | None = None
        self.granted: int | None = None
        self.registrations = 0  # successful REGISTERs (first + refreshes)

    def start(self) -> None:
        self.gw.registrations[self.call_id] = self
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, unregister: bool = True) -> None:
        if self.task is not None:
            self.task.cancel()
        if unregister and self.granted:
            self.gw._send(self._request(expires=0).serialize(), self.target.dest)  # best effort
        self.gw.registrations.pop(self.call_id, None)

    def on_response(self, resp: SipMessage, src: tuple[str, int]) -> None:
        if src[0] == self.target.dest[0] and not self.responses.full():
            self.responses.put_nowait(resp)

    async def _run(self) -> None:
        while True:
            try:
                granted, error = await self.register_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying: the next attempt may work
                granted, error = None, f"error: {exc}"
            self.granted = granted
            if granted:
                self.registrations += 1
                self.on_status("registered", "", granted)
                await self.sleep(max(5.0, min(granted * 0.8, granted - 10)))  # refresh before expiry
            else:
                self.on_status("failed", error, None)
                log.warning("trunk registration to %s failed: %s", self.target.domain, clip(error, 120))
                await self.sleep(RETRY_S)

    def _request(self, *, expires: int, authorization: tuple[str, str] | None = None) -> SipMessage:
        self.cseq += 1
        t = self.target
        local = self.gw.advertised or (self.gw.host if not self.gw.wildcard else "127.0.0.1")
        aor = f"sip:{t.username}@{t.domain}"
        req = SipMessage(method="REGISTER", uri=f"sip:{t.domain}")
        req.headers = [("via", f"SIP/2.0/UDP {local}:{self.gw.port};branch={new_branch()};rport"),
                       ("max-forwards", "70"), ("from", f"<{aor}>;tag={self.tag}"), ("to", f"<{aor}>"),
                       ("call-id", self.call_id), ("cseq", f"{self.cseq} REGISTER"),
                       ("contact", f"<sip:{t.username}@{local}:{self.gw.port}>"), ("expires", str(expires)),
                       ("user-agent", "TalkyAI")]
        if authorization:
            req.headers.append(authorization)
        return req

    async def _transaction(self, req: SipMessage) -> SipMessage | None:
        """Send with Timer E retransmission until a final response; None after 64*T1."""
        raw = req.serialize()
        self.gw._send(raw, self.target.dest)
        interval, waited = timers.T1, 0.0
        while waited < 64 * timers.T1:
            try:
                resp = await asyncio.wait_for(self.responses.get(), interval)
            except TimeoutError:
                waited += interval
                interval = min(interval * 2, timers.T2)
                self.gw._send(raw, self.target.dest)
                continue
            if resp.branch == req.branch and resp.cseq == req.cseq and (resp.status or 0) >= 200:
                return resp
        return None

    async def register_once(self) -> tuple[int | None, str]:
        """(seconds granted, "") or (None, why it failed)."""
        authorization = None
        for _ in range(2):
            req = self._request(expires=self.target.expires, authorization=authorization)
            resp = await self._transaction(req)
            if resp is None:
                return None, "no response (timeout)"
            status = resp.status or 0
            if 200 <= status < 300:
                return self._granted(resp), ""
            if status in (401, 407) and authorization is None and self.target.username:
                chal = resp.get("www-authenticate" if status == 401 else "proxy-authenticate") or ""
                value = uac.digest_authorization(chal, method="REGISTER", uri=req.uri or "",
                                                 username=self.target.username, password=self.target.password)
                if value is None:
                    return None, f"{status}: unusable challenge"
                authorization = ("authorization" if status == 401 else "proxy-authorization", value)
                continue
            return None, f"{status} {resp.reason}"[:200]
        return None, "credentials refused"

    def _granted(self, resp: SipMessage) -> int:
        for contact in resp.get_all("contact"):
            value = param(contact, "expires")
            if value and value.isdigit():
                return int(value)
        value = resp.get("expires") or ""
        return int(value) if value.isdigit() else self.target.expires
