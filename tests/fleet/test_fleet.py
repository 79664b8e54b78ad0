"""The fleet for real: Kamailio 5.6 (Debian) + two run_sip_bridge processes + a throwaway
PostgreSQL, all inside `unshare -n` (see harness.py). sipp places the calls through the proxy with
digest auth against TalkyAI's SIP accounts; sipsak registers phones.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.fleet.harness import read, run_fleet, shell, sipp

pytestmark = [pytest.mark.interop, pytest.mark.slow]

# more than pike's default budget of 16 initial requests / 2 s: one sipp source carries the load
LOAD = "-A PIKE_DENSITY=400"
CALLS_BY_NODE = """
import json
from collections import Counter
from telephony.models import BridgeNode, Call
nodes = {n.pk: n.host for n in BridgeNode.objects.all()}
calls = list(Call.objects.values('bridge_node_id', 'ended_at', 'end_reason', 'sip_call_id', 'started_at'))
print(json.dumps({
    'by_host': Counter(nodes.get(c['bridge_node_id'], '?') for c in calls),
    'open': sum(1 for c in calls if c['ended_at'] is None),
    'reasons': Counter(f"{nodes.get(c['bridge_node_id'], '?')} {c['end_reason']}" for c in calls),
    'nodes': {h: [n.stopped_at is not None, n.draining, n.max_calls]
              for n in BridgeNode.objects.all() for h in [n.host]},
    'calls': [[nodes.get(c['bridge_node_id'], '?'), c['sip_call_id'], c['started_at'].timestamp(),
               c['end_reason']] for c in calls],
}))
"""


def stat(tmp, name: str) -> str:
    out = read(tmp, f"{name}.out")
    return " | ".join(ln.strip() for ln in out.splitlines() if "Successful call" in ln or "Failed call" in ln)


def calls(tmp, name: str = "calls.json") -> dict:
    text = read(tmp, name)
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"no DB summary: {text[-1500:]}") from None


def test_calls_spread_over_both_bridges_and_phones_register_with_digest(tmp_path):
    t = tmp_path
    uas = ("sipp -sd uas 2>/dev/null | sed 's/\\[last_Call-ID:\\]/[last_Call-ID:]\\n      [last_Record-Route:]/' "
           "> $T/phone.xml\n")
    body = (sipp(t, "spread", "caller_auth.xml", ip="127.0.0.21", port=5070, extra="-m 100 -r 20 -l 30 -d 1000")
            + "sipsak -U -C sip:alice@127.0.0.31:5090 -s sip:alice@127.0.0.1:5060 -a s3cret -u alice -x 300 "
              "> $T/reg_ok.out 2>&1; echo $? > $T/reg_ok.rc\n"
            + "sipsak -U -C sip:alice@127.0.0.32:5090 -s sip:alice@127.0.0.1:5060 -a wrong -u alice -x 300 "
              "> $T/reg_bad.out 2>&1; echo $? > $T/reg_bad.rc\n"
            + "sipsak -U -C sip:carol@127.0.0.33:5090 -s sip:carol@127.0.0.1:5060 -a gone -u carol -x 300 "
              "> $T/reg_off.out 2>&1; echo $? > $T/reg_off.rc\n"
            + "psql -h 127.0.0.1 -U postgres talky -Atc \"SELECT username, contact FROM location\" > $T/location.txt\n"
            + uas
            + "timeout 60 sipp -sf $T/phone.xml -i 127.0.0.31 -p 5090 -m 1 -nostdin > $T/phone.out 2>&1 &\nPHONE=$!\n"
            # a bridge (by source address) calling a registered extension: routed by usrloc, no digest
            + sipp(t, "to_phone", "caller_trusted.xml", ip="127.0.0.11", port=5091, auth=False,
                   extra="-s alice -m 1 -d 500")
            + "wait $PHONE; echo $? > $T/phone.rc\n"
            + shell(CALLS_BY_NODE, "calls.json"))
    out = run_fleet(t, body, kam_extra=LOAD)
    assert read(t, "spread.rc").strip() == "0", stat(t, "spread") + read(t, "spread.err")[-1500:] + out
    summary = calls(t)
    by_host = summary["by_host"]
    assert sum(by_host.values()) == 100, summary
    assert by_host.get("127.0.0.11", 0) >= 25 and by_host.get("127.0.0.12", 0) >= 25, by_host
    assert summary["open"] == 0, summary
    # REGISTER with digest against the SIP account; wrong password and inactive account refused
    assert read(t, "reg_ok.rc").strip() == "0", read(t, "reg_ok.out")
    assert read(t, "reg_bad.rc").strip() != "0" and read(t, "reg_off.rc").strip() != "0"
    assert "alice|sip:alice@127.0.0.31:5090" in read(t, "location.txt"), read(t, "location.txt")
    assert "127.0.0.32" not in read(t, "location.txt") and "carol" not in read(t, "location.txt")
    kam = read(t, "kam.log")
    assert re.search(r"REGISTER alice \(account id \d+\) -> sip:alice@127.0.0.31:5090", kam)
    # a call to the registered extension reached the phone through the proxy and ended cleanly
    assert "INVITE alice -> registered contact sip:alice@127.0.0.31:5090" in kam, kam[-2000:]
    assert read(t, "to_phone.rc").strip() == "0", stat(t, "to_phone") + read(t, "to_phone.err")[-1000:]
    assert read(t, "phone.rc").strip() == "0", read(t, "phone.out")[-1500:]
