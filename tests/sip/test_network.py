"""The bridge on a (namespaced) network: a phone on a non-loopback address, a bridge bound to
0.0.0.0 with and without --advertise, an INVITE flood from another address during a real call,
and the sipvicious scanners. Everything runs inside `unshare -n` with extra addresses on `lo`."""

from __future__ import annotations

import shlex
import sys

import pytest

from .peers import (
    STOP_BRIDGE,
    baresip_cmd,
    baresip_dir,
    best_lag_corr,
    bridge_env,
    bridge_script,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
    speech_wav,
    windowed_corr,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]
# two hosts: this namespace is the bridge's (10.77.0.1 on a veth, 10.77.0.3 an extra address to
# advertise), a second namespace is the phone's network (10.77.0.2, and 10.77.0.9 for an attacker)
HOSTS = """
NS=talkyphone$$
ip netns add $NS
trap 'ip netns del $NS 2>/dev/null' EXIT
ip link add tb0 type veth peer name tp0
ip link set tp0 netns $NS
ip addr add 10.77.0.1/24 dev tb0 && ip link set tb0 up
ip addr add 10.77.0.3/32 dev lo
ip netns exec $NS ip link set lo up
ip netns exec $NS ip addr add 10.77.0.2/24 dev tp0
ip netns exec $NS ip addr add 10.77.0.9/24 dev tp0
ip netns exec $NS ip link set tp0 up
ip netns exec $NS ip route add default via 10.77.0.1
"""
ON_PHONE = "ip netns exec $NS "
ACCOUNT = ("from telephony.models import SipAccount; a = SipAccount(username='tester', realm='talky'); "
           "a.set_password('s3cret'); a.save()")
FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.77.0.9", 5099))
for i in range(3000):
    s.sendto((f"INVITE sip:100@10.77.0.1 SIP/2.0\\r\\nVia: SIP/2.0/UDP 10.77.0.9:5099;branch=z9hG4bKf{i}\\r\\n"
              f"From: <sip:x@10.77.0.9>;tag=f{i}\\r\\nTo: <sip:100@10.77.0.1>\\r\\nCall-ID: flood-{i}\\r\\n"
              f"CSeq: 1 INVITE\\r\\nContent-Length: 0\\r\\n\\r\\n").encode(), ("10.77.0.1", 5060))
"""


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path)
    prepare_db(e)
    manage_shell(e, ACCOUNT)
    return e


def echo_ok(tmp_path, d, wav) -> tuple[int, float]:
    dec = sorted((d / "rec").glob("dump-*-dec.wav"))
    assert dec, "baresip recorded nothing: " + (d / "baresip.log").read_text(errors="replace")[-1500:]
    ref, _ = read_wav(wav)
    got, _ = read_wav(dec[-1])
    lag, _ = best_lag_corr(ref, got, 8000 * 2)
    return lag, windowed_corr(ref, got, lag)


@pytest.mark.parametrize("advertise", [None, "10.77.0.3"])
def test_a_remote_phone_hears_a_wildcard_bridge(tmp_path, env, advertise):
    require("baresip", "espeak-ng", "sox", "unshare")
    wav = speech_wav(tmp_path, "Hello from another address. One two three four five six.")
    d = baresip_dir(tmp_path, wav, ip="10.77.0.2", domain="10.77.0.1", register="auth_pass=s3cret;regint=0")
    extra = "--host 0.0.0.0" + (f" --advertise {advertise}" if advertise else "")
    out = run_in_netns(HOSTS + bridge_script(tmp_path, agent="echo", extra=extra)
                       + ON_PHONE + baresip_cmd(d, "sip:100@10.77.0.1:5060", 9) + STOP_BRIDGE, env)
    log = (d / "baresip.log").read_text(errors="replace")
    assert "Call established" in log, log[-2000:] + out.stderr
    lag, corr = echo_ok(tmp_path, d, wav)
    assert corr > 0.9, f"echo correlation {corr:.2f} at {lag / 8:.0f} ms"
    bridge_log = (tmp_path / "bridge.log").read_text()
    assert f"advertising {advertise or 'the address each request arrived on'}" in bridge_log
    assert "remote ('10.77.0.2'" in bridge_log and "ignored=0" in bridge_log, bridge_log[-1500:]


def test_an_invite_flood_from_one_address_does_not_stop_a_real_call(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    wav = speech_wav(tmp_path, "The flood must not stop this call. One two three four five.")
    d = baresip_dir(tmp_path, wav, ip="10.77.0.2", domain="10.77.0.1", register="auth_pass=s3cret;regint=0")
    flood = f"{ON_PHONE}{shlex.quote(sys.executable)} -c {shlex.quote(FLOOD)} &\nFLOOD=$!\n"
    out = run_in_netns(HOSTS + bridge_script(tmp_path, agent="echo", extra="--host 0.0.0.0") + flood
                       + ON_PHONE + baresip_cmd(d, "sip:100@10.77.0.1:5060", 8) + "wait $FLOOD\n" + STOP_BRIDGE, env)
    log = (d / "baresip.log").read_text(errors="replace")
    assert "Call established" in log, log[-2000:] + out.stderr
    assert echo_ok(tmp_path, d, wav)[1] > 0.9
    bridge_log = (tmp_path / "bridge.log").read_text()
    assert "10.77.0.9 over its request budget" in bridge_log, bridge_log[-2000:]


def test_sipvicious_finds_nothing(tmp_path, env):
    require("unshare")
    bin_dir = shlex.quote(str(__import__("pathlib").Path(sys.executable).parent))
    (tmp_path / "dict.txt").write_text("123456\npassword\ns3cret\n")
    script = (bridge_script(tmp_path, agent="echo")
              + f"timeout 60 {bin_dir}/sipvicious_svmap -p 5060 127.0.0.1 > {tmp_path}/svmap.out 2>&1\n"
              + f"timeout 60 {bin_dir}/sipvicious_svwar --force -e 95-105 127.0.0.1 > {tmp_path}/svwar.out 2>&1\n"
              + f"timeout 60 {bin_dir}/sipvicious_svcrack -u tester -d {tmp_path}/dict.txt 127.0.0.1 "
                f"> {tmp_path}/svcrack.out 2>&1\n" + STOP_BRIDGE)
    run_in_netns(script, env, timeout=240)
    svmap, svwar, svcrack = ((tmp_path / f).read_text(errors="replace") for f in
                             ("svmap.out", "svwar.out", "svcrack.out"))
    assert all("found nothing" in out for out in (svmap, svwar, svcrack)), (svmap, svwar, svcrack)  # they ran
    assert "127.0.0.1:5060" not in svmap and "TalkyAI" not in svmap, svmap
    assert "100" not in [line.split("|")[1].strip() for line in svwar.splitlines() if line.count("|") >= 3], svwar
    assert "s3cret" not in svcrack, svcrack
