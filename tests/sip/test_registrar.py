"""Registrar: expiry on an injected clock, safe Expires parsing, caps, and memory that stays flat."""

from __future__ import annotations

import pytest

from telephony.sip.policy import SipPolicy, parse_networks
from telephony.sip.registrar import (
    MAX_AOR_LEN,
    MAX_CONTACT_LEN,
    IntervalTooBrief,
    InvalidRegister,
    Registrar,
    RegistrarFull,
    parse_contact,
    split_contacts,
)

SRC = ("192.0.2.10", 5060)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(clock: Clock | None = None, **policy) -> Registrar:
    return Registrar(SipPolicy(**policy), clock=clock or Clock())


def test_register_lookup_expire_and_unregister():
    clock = Clock()
    reg = make(clock)
    assert reg.update("sip:a@x", ["<sip:a@192.0.2.10:5060>"], "60", SRC) == [("<sip:a@192.0.2.10:5060>", 60)]
    assert reg.contacts_of("sip:a@x") == ["sip:a@192.0.2.10:5060"] and len(reg) == 1
    clock.t += 30
    assert reg.lookup("sip:a@x") == [("<sip:a@192.0.2.10:5060>", 30)]
    clock.t += 30
    assert reg.lookup("sip:a@x") == [] and reg.contacts_of("sip:a@x") == [] and len(reg) == 0
    reg.update("sip:a@x", ["<sip:a@192.0.2.10:5060>"], None, SRC)  # default expiry
    assert reg.lookup("sip:a@x")[0][1] == 3600
    reg.update("sip:a@x", ["<sip:a@192.0.2.10:5060>;expires=0"], None, SRC)
    assert reg.lookup("sip:a@x") == [] and reg.sizes() == {"bindings": 0, "aors": 0, "sources": 0, "heap": 1}


def test_star_removes_all_only_with_expires_zero():
    reg = make()
    reg.update("sip:a@x", ["<sip:a@h1>", "<sip:a@h2>"], "60", SRC)
    for contacts, expires in ((["*"], None), (["*"], "60"), (["*", "<sip:a@h3>"], "0")):
        with pytest.raises(InvalidRegister):
            reg.update("sip:a@x", contacts, expires, SRC)
    assert len(reg.lookup("sip:a@x")) == 2
    assert reg.update("sip:a@x", ["*"], "0", SRC) == [] and len(reg) == 0


def test_contact_param_expires_overrides_header_and_is_stripped():
    reg = make()
    out = reg.update("sip:a@x", ['"Alice, A" <sip:a@h;transport=udp>;expires=30;+sip.instance="<urn:uuid:1>"'],
                     "600", SRC)
    assert out == [('"Alice, A" <sip:a@h;transport=udp>;+sip.instance="<urn:uuid:1>"', 30)]
    assert reg.contacts_of("sip:a@x") == ["sip:a@h;transport=udp"]


def test_comma_separated_contacts_and_refresh_keeps_one_binding():
    reg = make()
    reg.update("sip:a@x", ['<sip:a@h1>, "B, b" <sip:a@h2>;expires=10'], "60", SRC)
    assert sorted(reg.lookup("sip:a@x")) == [('"B, b" <sip:a@h2>', 10), ("<sip:a@h1>", 60)]
    reg.update("sip:a@x", ["<sip:a@h1>"], "120", SRC)
    assert len(reg) == 2 and reg.sizes()["sources"] == 1


def test_contacts_of_is_most_recent_first():
    clock = Clock()
    reg = make(clock)
    reg.update("sip:a@x", ["<sip:a@h1>"], "60", SRC)
    reg.update("sip:a@x", ["<sip:a@h2>"], "60", SRC)
    assert reg.contacts_of("sip:a@x") == ["sip:a@h2", "sip:a@h1"]
    reg.update("sip:a@x", ["<sip:a@h1>"], "60", SRC)
    assert reg.contacts_of("sip:a@x") == ["sip:a@h1", "sip:a@h2"]


@pytest.mark.parametrize("bad", ["abc", "-1", "1e3", "+5", "6 0", "", "\u0663", "0x10", "60;"])
def test_bad_expires_is_refused_and_changes_nothing(bad):
    reg = make()
    with pytest.raises(InvalidRegister) as e:
        reg.update("sip:a@x", ["<sip:a@h>"], bad, SRC)
    assert e.value.reason == "expires" and e.value.status == 400
    if ";" not in bad:  # as a contact parameter, "60;" is just expires=60 followed by nothing
        with pytest.raises(InvalidRegister):
            reg.update("sip:a@x", [f"<sip:a@h>;expires={bad}"], "60", SRC)
    assert len(reg) == 0


def test_expires_is_clamped():
    reg = make()
    assert reg.update("sip:a@x", ["<sip:a@h>"], "99999999999999999999", SRC)[0][1] == 7200
    assert reg.update("sip:a@x", ["<sip:a@h>"], "9" * 60_000, SRC)[0][1] == 7200  # not converted to int
    assert reg.update("sip:a@x", ["<sip:a@h>"], " 00030 ", SRC)[0][1] == 30


def test_min_expires_answers_423():
    reg = Registrar(SipPolicy(), clock=Clock(), min_expires=60)
    with pytest.raises(IntervalTooBrief) as e:
        reg.update("sip:a@x", ["<sip:a@h>"], "5", SRC)
    assert e.value.status == 423 and e.value.min_expires == 60
    assert reg.update("sip:a@x", ["<sip:a@h>"], "60", SRC)
    assert reg.update("sip:a@x", ["<sip:a@h>"], "0", SRC) == []  # removal is never too brief


def test_oversized_aor_and_contact_are_refused():
    reg = make()
    with pytest.raises(InvalidRegister, match="aor"):
        reg.update("sip:" + "a" * MAX_AOR_LEN + "@x", ["<sip:a@h>"], "60", SRC)
    with pytest.raises(InvalidRegister, match="contact"):
        reg.update("sip:a@x", ["<sip:" + "a" * MAX_CONTACT_LEN + "@h>"], "60", SRC)
    for bad in ("<sip:a@h", "<>", ";expires=5", "sip:a b@h"):
        with pytest.raises(InvalidRegister):
            reg.update("sip:a@x", [bad], "60", SRC)
    assert len(reg) == 0


def test_per_aor_cap_is_all_or_nothing():
    reg = make(max_bindings_per_aor=3)
    reg.update("sip:a@x", ["<sip:a@h1>", "<sip:a@h2>"], "60", SRC)
    with pytest.raises(RegistrarFull) as e:
        reg.update("sip:a@x", ["<sip:a@h3>", "<sip:a@h4>"], "60", SRC)
    assert e.value.reason == "aor" and e.value.status == 403
    assert len(reg.lookup("sip:a@x")) == 2  # nothing of the refused REGISTER was applied
    reg.update("sip:a@x", ["<sip:a@h1>;expires=0", "<sip:a@h3>", "<sip:a@h4>"], "60", SRC)  # swap fits
    assert sorted(reg.contacts_of("sip:a@x")) == ["sip:a@h2", "sip:a@h3", "sip:a@h4"]
    with pytest.raises(RegistrarFull):  # a huge list is refused while it is being split
        reg.update("sip:b@x", [", ".join(f"<sip:b@h{i}>" for i in range(5000))], "60", SRC)


def test_per_source_cap_counts_the_ip_not_the_port():
    reg = make(max_bindings_per_source=5)
    for i in range(5):
        reg.update(f"sip:{i}@x", [f"<sip:{i}@192.0.2.10:{6000 + i}>"], "60", ("192.0.2.10", 6000 + i))
    with pytest.raises(RegistrarFull) as e:
        reg.update("sip:9@x", ["<sip:9@192.0.2.10:7000>"], "60", ("192.0.2.10", 7000))
    assert e.value.reason == "source" and e.value.status == 403
    reg.update("sip:0@x", ["<sip:0@192.0.2.10:6000>"], "60", ("192.0.2.10", 6001))  # a refresh still works
    reg.update("sip:9@x", ["<sip:9@h>"], "60", ("192.0.2.11", 5060))  # another source is not affected
    # IPv6: one /64 is one source
    for i in range(5):
        reg.update(f"sip:v{i}@x", [f"<sip:v{i}@h>"], "60", (f"2001:db8::{i + 1}", 5060))
    with pytest.raises(RegistrarFull):
        reg.update("sip:v9@x", ["<sip:v9@h>"], "60", ("2001:db8::ffff:1", 5060))


def test_trusted_source_is_exempt_from_the_per_source_cap_but_not_the_total():
    reg = make(max_bindings_per_source=2, max_bindings_total=10, trusted=parse_networks("10.0.0.0/8"))
    for i in range(10):
        reg.update(f"sip:{i}@x", [f"<sip:{i}@h>"], "60", ("10.0.0.1", 5060))
    with pytest.raises(RegistrarFull) as e:
        reg.update("sip:99@x", ["<sip:99@h>"], "60", ("10.0.0.1", 5060))
    assert e.value.reason == "total" and e.value.status == 503


def test_total_cap_frees_up_when_bindings_expire():
    clock = Clock()
    reg = make(clock, max_bindings_total=10)
    for i in range(10):
        reg.update(f"sip:{i}@x", [f"<sip:{i}@h>"], "30", (f"198.51.100.{i}", 5060))
    with pytest.raises(RegistrarFull):
        reg.update("sip:new@x", ["<sip:new@h>"], "30", ("198.51.100.200", 5060))
    clock.t += 31
    reg.update("sip:new@x", ["<sip:new@h>"], "30", ("198.51.100.200", 5060))
    assert len(reg) == 1 and reg.sizes()["aors"] == 1 and reg.sizes()["sources"] == 1


def test_binding_moving_to_another_source_is_recounted():
    reg = make(max_bindings_per_source=1)
    reg.update("sip:a@x", ["<sip:a@h>"], "60", ("192.0.2.1", 5060))
    reg.update("sip:a@x", ["<sip:a@h>"], "60", ("192.0.2.2", 5060))  # the phone changed network
    reg.update("sip:b@x", ["<sip:b@h>"], "60", ("192.0.2.1", 5060))  # the old source has room again
    assert reg.sizes()["sources"] == 2


def test_thirty_thousand_registrations_keep_memory_flat():
    """Today's defect: the registrar was never pruned; 30,000 REGISTERs from many ports grew it unbounded."""
    clock = Clock()
    reg = make(clock, max_bindings_total=2000, max_bindings_per_source=20)
    accepted = refused = 0
    peak = {"bindings": 0, "aors": 0, "sources": 0, "heap": 0}
    for i in range(30_000):
        src = (f"10.{(i >> 8) % 256}.{i % 256}.{(i // 7) % 5}", 1024 + i % 60_000)
        try:
            reg.update(f"sip:u{i}@talky", [f"<sip:u{i}@{src[0]}:{src[1]}>"], "60", src)
            accepted += 1
        except RegistrarFull:
            refused += 1
        if i % 100 == 0:
            clock.t += 1
        for k, v in reg.sizes().items():
            peak[k] = max(peak[k], v)
    assert accepted > 10_000 and refused > 0  # expiry made room all along; the cap held the rest
    assert peak["bindings"] <= 2000 and peak["aors"] <= 2000 and peak["sources"] <= 2000
    assert peak["heap"] <= 2 * 2000 + 1024
    clock.t += 61
    assert len(reg) == 0
    assert reg.sizes() == {"bindings": 0, "aors": 0, "sources": 0, "heap": 0}


def test_refresh_storm_does_not_grow_the_heap():
    clock = Clock()
    reg = make(clock)
    for i in range(50_000):
        reg.update("sip:a@x", ["<sip:a@h>"], str(3600 - i % 100), SRC)
    assert len(reg) == 1 and reg.sizes()["heap"] <= 2 + 1024


def test_source_flood_from_many_ports_of_one_ip_is_capped():
    reg = make()  # default policy: 20 bindings per source
    refused = 0
    for port in range(1024, 31_024):
        try:
            reg.update(f"sip:{port}@x", [f"<sip:{port}@192.0.2.66:{port}>"], "3600", ("192.0.2.66", port))
        except RegistrarFull as e:
            assert e.reason == "source"
            refused += 1
    assert len(reg) == 20 and refused == 30_000 - 20


def test_split_and_parse_contact_are_linear_helpers():
    assert split_contacts('<sip:a@h>, "x,y" <sip:b@h>,sip:c@h;expires=5') == [
        "<sip:a@h>", '"x,y" <sip:b@h>', "sip:c@h;expires=5"]
    assert parse_contact("sip:c@h;expires=5;q=0.5") == ("sip:c@h", "sip:c@h;q=0.5", "5")
    assert parse_contact("<sip:c@h;lr>;EXPIRES=7") == ("sip:c@h;lr", "<sip:c@h;lr>", "7")


def test_auth_module_still_reexports_registrar():
    from telephony.sip import auth

    assert auth.Registrar is Registrar
