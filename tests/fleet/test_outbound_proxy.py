"""Calls to registered extensions from a fleet bridge go to the proxy (fast, no sockets): phones
register with Kamailio, never with a bridge, so the bridge's own registrar is empty behind it.
The real path (baresip registered through Kamailio, manage.py dial) is test_fleet_dial.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from campaigns.outbound import Refused, RoutePlan
from telephony.bridge.config import parse_outbound_proxy, parse_proxies
from telephony.bridge.outbound import OutboundCalls


def nets(text: str) -> tuple:
    return parse_proxies(text)


@pytest.mark.parametrize(("value", "proxies", "expected"), [
    ("", "127.0.0.1", ("127.0.0.1", 5060)),              # the one trusted proxy, SIP's port
    ("", "10.0.0.5,10.0.0.6", ("10.0.0.5", 5060)),       # several proxies: the first (same database)
    ("", "10.0.0.0/24", None),                           # a network names no one address to send to
    ("", "", None),                                      # single-process default: own registrar
    ("10.0.0.7:5070", "10.0.0.0/24", ("10.0.0.7", 5070)),
    ("10.0.0.7", "", ("10.0.0.7", 5060)),
    ("[fd00::5]:5080", "", ("fd00::5", 5080)),
])
def test_outbound_proxy_comes_from_the_flag_or_the_trusted_proxy(value, proxies, expected):
    assert parse_outbound_proxy(value, nets(proxies)) == expected


@pytest.mark.parametrize("value", ["kamailio.example:5060", "0.0.0.0", "10.0.0.7:0", "10.0.0.7:x", "224.0.0.1"])
def test_outbound_proxy_refuses_names_and_nonsense(value):
    with pytest.raises(ValueError, match="--outbound-proxy"):
        parse_outbound_proxy(value, ())


def outbound(proxy: tuple[str, int] | None, registered: list | None = None) -> OutboundCalls:
    registrar = SimpleNamespace(find_user=lambda user: registered or [])
    runner = SimpleNamespace(gateway=SimpleNamespace(registrar=registrar), outbound_proxy=proxy)
    return OutboundCalls(runner)


async def test_an_extension_is_dialled_through_the_proxy_with_its_name_as_the_request_uri_user():
    target = await outbound(("127.0.0.1", 5060)).target_for(RoutePlan("extension", "alice"))
    assert target.request_uri == "sip:alice@127.0.0.1:5060" and target.dest == ("127.0.0.1", 5060)
    assert target.dialed == "alice" and not target.auth_user  # the proxy trusts bridges by address
    v6 = await outbound(("fd00::5", 5080)).target_for(RoutePlan("extension", "200"))
    assert v6.request_uri == "sip:200@[fd00::5]:5080" and v6.dest == ("fd00::5", 5080)


async def test_without_a_proxy_the_bridge_uses_its_own_registrar_as_before():
    phone = ("sip:alice@127.0.0.31:5062", ("127.0.0.31", 5062))
    target = await outbound(None, [phone]).target_for(RoutePlan("extension", "alice"))
    assert target.request_uri == phone[0] and target.dest == phone[1]
    with pytest.raises(Refused, match="not registered"):
        await outbound(None).target_for(RoutePlan("extension", "bob"))

