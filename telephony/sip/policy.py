"""The bridge's network policy in one value: abuse limits, state caps and timers.

Plain data, no Django: the runner builds it from settings/CLI flags, the gateway and the pure
limiters (``telephony.sip.limits``, ``telephony.sip.registrar``, ``telephony.sip.auth``) read it.
Defaults follow Kamailio's pike/antiflood habits: a small per-source budget, then ignore the
source for a while; trusted addresses (a proxy in front, a trunk) are exempt.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

SCANNER_USER_AGENTS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr", "iwar",
                       "sipsak", "vaxsipuseragent", "pplsip", "smap", "nmap", "sipptk", "cpxsip")


def parse_networks(value: str | list[str] | tuple[str, ...] | None) -> tuple[ipaddress._BaseNetwork, ...]:
    """'10.0.0.0/8, 192.0.2.7' -> networks. Raises ValueError with the bad item named."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    nets = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {item[:60]!r}") from None
    return tuple(nets)


@dataclass(frozen=True)
class SipPolicy:
    # per-source request budget (pike): every request counts, in-dialog requests of established
    # calls excepted; over budget -> the source is ignored for block_s
    request_rate: float = 40.0  # requests per second per source IP
    request_burst: int = 80
    # new INVITEs per source IP (token bucket)
    invite_rate: float = 5.0
    invite_burst: int = 10
    block_s: float = 60.0
    max_calls_per_source: int = 10
    # auth failures: auth_fail_limit wrong answers within auth_fail_window_s from one IP or for one
    # user -> refused for auth_lockout_s, even with the right password
    auth_fail_limit: int = 5
    auth_fail_window_s: float = 600.0
    auth_lockout_s: float = 600.0
    # registrar caps
    max_bindings_per_aor: int = 10
    max_bindings_per_source: int = 20
    max_bindings_total: int = 5000  # one bridge; a fleet keeps registrations in Kamailio (PostgreSQL)
    # how many sources / users the limiters remember at most (LRU beyond that)
    max_tracked_sources: int = 10000
    # call supervision
    hold_timeout_s: float = 600.0
    rtp_latch_window_s: float = 10.0  # media may latch to a NAT'd port of the caller's IP this long
    trusted: tuple = field(default_factory=tuple)  # ipaddress networks exempt from the limits above
    scanner_user_agents: tuple[str, ...] = SCANNER_USER_AGENTS

    def is_trusted(self, ip: str) -> bool:
        if not self.trusted:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)

    def is_scanner(self, user_agent: str | None) -> bool:
        if not user_agent:
            return False
        ua = user_agent[:200].lower()
        return any(s in ua for s in self.scanner_user_agents)


def source_key(ip: str) -> str:
    """The unit the per-source limits count: the IPv4 address, or the IPv6 /64.

    One IPv6 host usually holds a whole /64, so counting single IPv6 addresses would hand an
    attacker 2**64 fresh budgets. IPv4-mapped IPv6 addresses count as their IPv4 address.
    """
    if ":" not in ip:
        return ip
    try:
        addr = ipaddress.IPv6Address(ip.split("%", 1)[0])
    except ValueError:
        return ip[:64]
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
