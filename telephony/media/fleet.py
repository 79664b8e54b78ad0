"""The gateway as one bridge of a fleet behind a SIP proxy (Kamailio): trusted-proxy signalling
and draining. Plain asyncio, no Django, like the rest of ``telephony.media``.

Kept as a subclass so the front door (``gateway.py``) stays as it is for the single-process
default: without proxies and without draining, every method here falls through to it unchanged.

* ``proxies``: when set, SIP is accepted only from these addresses (anything else is dropped
  without a word: behind a proxy, a packet from elsewhere is a scanner or a misroute). The proxy
  authenticated the caller already (digest against the same SIP accounts) and consumed the
  credentials, so requests from it are admitted without a second challenge. RTP is not affected:
  media flows between phone and bridge directly.
* ``draining``: OPTIONS and new INVITEs get 503, so the proxy's dispatcher marks this bridge
  inactive (its probes need a 2xx) and fails the INVITE over to another bridge; calls already up
  carry on, and in-dialog requests (ACK, BYE, re-INVITE) are served as usual.
"""

from __future__ import annotations

import ipaddress

from telephony.media.gateway import SIPMediaGateway
from telephony.sip.auth import AuthResult
from telephony.sip.message import SipMessage, new_tag
from telephony.sip.policy import parse_networks

DRAIN_RETRY_AFTER_S = 60


class FleetGateway(SIPMediaGateway):
    def __init__(self, *, proxies: str | list[str] | tuple = (), **kwargs) -> None:
        super().__init__(**kwargs)
        # a comma string, or IPs/networks (already parsed by the runner); ValueError names a bad item
        self.proxies = parse_networks(proxies if isinstance(proxies, str) else [str(p) for p in proxies])
        self.draining = False
        self.stats.setdefault("not_from_proxy", 0)
        self.stats.setdefault("drain_refused", 0)

    def from_proxy(self, ip: str) -> bool:
        if not self.proxies:
            return False
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self.proxies)

    def drain(self) -> None:
        """Take no new calls from now on (idempotent); the caller waits for the live ones."""
        self.draining = True

    # --- overrides of the front door ------------------------------------------------------------
    def _on_datagram(self, data: bytes, src: tuple[str, int], local_ip: str | None) -> None:
        if self.proxies and not self.from_proxy(src[0]):
            self.stats["not_from_proxy"] += 1
            return
        super()._on_datagram(data, src, local_ip)

    def _on_request(self, req: SipMessage, src: tuple[str, int], local_ip: str | None) -> None:
        new_invite = req.method == "INVITE" and not req.to_tag and req.call_id not in self.dialogs
        if self.draining and (new_invite or (req.method == "OPTIONS" and not req.to_tag)):
            self.stats["drain_refused"] += 1
            self._respond(req, 503, "Draining", to_tag=new_tag() if new_invite else None,
                          extra=[("Retry-After", str(DRAIN_RETRY_AFTER_S))], src=src)
            return
        super()._on_request(req, src, local_ip)

    def _admit(self, req: SipMessage, src: tuple[str, int]) -> AuthResult | None:
        if self.proxies and self.from_proxy(src[0]):
            return AuthResult(ok=True, stale=False, user="", reason="proxy")
        return super()._admit(req, src)
