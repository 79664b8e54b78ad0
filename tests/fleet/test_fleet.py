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


OPEN_BY_HOST = ("psql -h 127.0.0.1 -U postgres talky -Atc \"SELECT n.host || ' ' || count(*) FROM telephony_call c "
                "JOIN telephony_bridgenode n ON c.bridge_node_id = n.id WHERE c.ended_at IS NULL GROUP BY n.host\"")


def wait_both_busy(total: int) -> str:
    """Until ``total`` calls are up, on both bridges (bounded: 15 s); the last count in $T/open_before.txt."""
    return f"""
for i in $(seq 1 150); do
  {OPEN_BY_HOST} > $T/open_before.txt
  [ "$(grep -c '^127.0.0.1[12] ' $T/open_before.txt)" = 2 ] && \\
    [ "$(awk '{{s += $2}} END {{print s}}' $T/open_before.txt)" = {total} ] && break
  sleep 0.1
done
"""


def mean_answer_ms(tmp, name: str) -> float:
    """sipp's mean INVITE -> 200 time over a run (cumulative ResponseTime1 of its -trace_stat CSV)."""
    rows = [ln.split(";") for ln in read(tmp, f"{name}.csv").splitlines() if ln.strip()]
    if len(rows) < 2 or "ResponseTime1(C)" not in rows[0]:
        return float("nan")
    parts = rows[-1][rows[0].index("ResponseTime1(C)")].split(":")  # hh:mm:ss:usec
    h, m, sec, us = (int(x) for x in parts[:4])
    return (h * 3600 + m * 60 + sec) * 1000 + us / 1000


def test_a_killed_bridge_loses_no_new_call_and_its_calls_are_finalised_once(tmp_path):
    t = tmp_path
    body = (sipp(t, "long", "caller_auth.xml", ip="127.0.0.22", port=5071, extra="-m 4 -r 10 -l 4 -d 60000",
                 background=True)
            + wait_both_busy(4)
            + "now > $T/kill_at; kill -KILL $BRIDGE_A\n"
            # the survivor finalises the dead node's calls: when (bounded 30 s), while new calls go on
            + f"""
( for i in $(seq 1 300); do {OPEN_BY_HOST} | grep -q '^127.0.0.11 ' || break; sleep 0.1; done
  now > $T/finalised_at ) &
REAP=$!
"""
            # new calls from the moment of the kill: each must be answered within 15 s
            + sipp(t, "after", "caller_auth.xml", ip="127.0.0.21", port=5070,
                   extra="-m 30 -r 3 -l 10 -d 500 -recv_timeout 15000")
            + """
wait $REAP
$K dispatcher.list > $T/ds_after.txt 2>&1
kill -TERM $LONG_PID 2>/dev/null; wait $LONG_PID 2>/dev/null
""" + shell(CALLS_BY_NODE, "calls.json"))
    out = run_fleet(t, body, kam_extra=LOAD, drain_timeout=1)
    before = dict(ln.split() for ln in read(t, "open_before.txt").split("\n") if ln.strip())
    assert set(before) == {"127.0.0.11", "127.0.0.12"}, read(t, "open_before.txt") + out
    assert read(t, "after.rc").strip() == "0", stat(t, "after") + read(t, "after.err")[-1500:] + out
    summary = calls(t)
    kill_at = float(read(t, "kill_at"))
    after_kill = [c for c in summary["calls"] if c[1].endswith("@127.0.0.21")]
    assert len(after_kill) == 30 and all(c[0] == "127.0.0.12" and c[2] > kill_at for c in after_kill), after_kill
    # the dead node's calls: every one finalised, as "bridge lost", by the survivor, once
    lost = [c for c in summary["calls"] if c[0] == "127.0.0.11"]
    assert len(lost) == int(before["127.0.0.11"]) and all(c[3] == "bridge_lost" for c in lost), lost
    reaped = [int(n) for n in re.findall(r"another bridge died: finalised (\d+) of its call", read(t, "bridgeB.log"))]
    assert sum(reaped) == len(lost), read(t, "bridgeB.log")[-2000:]
    finalised_s = float(read(t, "finalised_at")) - kill_at
    assert finalised_s < 15, finalised_s
    assert "127.0.0.11" not in read(t, "ds_after.txt"), read(t, "ds_after.txt")  # gone from the list
    kam = read(t, "kam.log")
    down = re.search(r"DS-DOWN .*127.0.0.11:5080.* at ([\d.]+)", kam)
    gone = [float(x) for x in re.findall(r"FLEET reloaded dispatcher list \(\w+\) at ([\d.]+)", kam)]
    gone = [x for x in gone if x > kill_at]
    failovers = [float(x) - kill_at for x in re.findall(r"failover \S+ -> sip:127.0.0.12:5080 at ([\d.]+)", kam)]
    print(f"failover: new calls answered in {mean_answer_ms(t, 'after'):.0f} ms on average; "
          f"{len(failovers)} INVITE(s) sent to the dead bridge failed over at +{failovers} s; marked down "
          f"{(float(down.group(1)) - kill_at) if down else float('nan'):.2f} s, dropped from the list "
          f"{(gone[0] - kill_at) if gone else float('nan'):.2f} s after the kill; its {len(lost)} call(s) "
          f"finalised by 127.0.0.12 {finalised_s:.1f} s after the kill")


def test_a_draining_bridge_takes_no_new_call_and_loses_none(tmp_path):
    t = tmp_path
    body = (sipp(t, "long", "caller_auth.xml", ip="127.0.0.22", port=5071, extra="-m 4 -r 10 -l 4 -d 6000",
                 background=True)
            # one call that outlives the drain timeout: the bridge must end it with a BYE the caller gets
            + sipp(t, "stay", "caller_auth_wait_bye.xml", ip="127.0.0.23", port=5072, extra="-m 1",
                   background=True)
            + wait_both_busy(5)
            + "now > $T/drain_at; kill -TERM $BRIDGE_A\n"
            + sipp(t, "after", "caller_auth.xml", ip="127.0.0.21", port=5070,
                   extra="-m 20 -r 4 -l 10 -d 500")
            + """
wait $LONG_PID; echo $? > $T/long.rc
for i in $(seq 1 300); do kill -0 $BRIDGE_A 2>/dev/null || break; sleep 0.1; done
now > $T/exit_at; wait $BRIDGE_A; echo $? > $T/bridgeA.rc; BRIDGE_A=""
kill -TERM $BRIDGE_B 2>/dev/null
wait $STAY_PID; echo $? > $T/stay.rc
for i in $(seq 1 300); do kill -0 $BRIDGE_B 2>/dev/null || break; sleep 0.1; done
wait $BRIDGE_B; echo $? > $T/bridgeB.rc; BRIDGE_B=""
""" + shell(CALLS_BY_NODE, "calls.json"))
    out = run_fleet(t, body, kam_extra=LOAD, drain_timeout=12)
    assert read(t, "after.rc").strip() == "0", stat(t, "after") + read(t, "after.err")[-1500:] + out
    assert read(t, "long.rc").strip() == "0", stat(t, "long") + read(t, "long.err")[-1500:]  # none lost
    summary = calls(t)
    drain_at = float(read(t, "drain_at"))
    new_on_a = [c for c in summary["calls"] if c[0] == "127.0.0.11" and c[1].endswith("@127.0.0.21")]
    assert all(c[2] > drain_at for c in summary["calls"] if c[1].endswith("@127.0.0.21"))
    assert not new_on_a, new_on_a
    assert summary["open"] == 0 and summary["nodes"]["127.0.0.11"][:2] == [True, True], summary
    a_log = read(t, "bridgeA.log")
    assert "draining: no new calls" in a_log and read(t, "bridgeA.rc").strip() == "0", a_log[-2000:]
    # A exited once its calls were over (6 s calls), well before the 12 s drain timeout ...
    a_reasons = {k: v for k, v in summary["reasons"].items() if k.startswith("127.0.0.11")}
    if "127.0.0.11 shutdown" in a_reasons:  # ... unless the never-ending call landed there
        assert a_reasons["127.0.0.11 shutdown"] == 1, a_reasons
    else:
        assert float(read(t, "exit_at")) - drain_at < 11, a_log[-1500:]
    # the call that outlived the drain was ended by the bridge with a BYE the caller answered
    assert read(t, "stay.rc").strip() == "0", stat(t, "stay") + read(t, "stay.err")[-1500:] + read(t, "stay.out")[-800:]
    assert sum(v for k, v in summary["reasons"].items() if k.endswith(" shutdown")) == 1, summary["reasons"]


def test_a_drain_request_through_the_node_row_makes_a_real_bridge_exit(tmp_path):
    """POST /api/v1/sip/nodes/{id}/drain writes the row; the bridge sees it at its next heartbeat,
    drains (no calls: at once) and exits 0. The single-process default: SQLite, no proxy."""
    from tests.sip.peers import bridge_env, bridge_script, prepare_db, require, run_in_netns

    require("unshare")
    env = bridge_env(tmp_path)
    prepare_db(env)
    drain = shell("from telephony.bridge import fleetdb; from telephony.models import BridgeNode\n"
                  "n = BridgeNode.objects.filter(stopped_at__isnull=True).get()\n"
                  "print(fleetdb.request_drain(n.pk).pk)", "drain.out")
    script = (f"T={tmp_path}\n" + bridge_script(tmp_path, agent="echo") + drain + """
for i in $(seq 1 100); do kill -0 $BRIDGE 2>/dev/null || break; sleep 0.1; done
kill -0 $BRIDGE 2>/dev/null && { echo still-running; kill -KILL $BRIDGE; }
wait $BRIDGE; echo "rc=$?"
""")
    out = run_in_netns(script, env, timeout=90)
    log = (tmp_path / "bridge.log").read_text()
    assert "rc=0" in out.stdout and "still-running" not in out.stdout, out.stdout + out.stderr + log[-1500:]
    assert "drain requested" in log and "drain done" in log and "SIP bridge stopped" in log, log[-1500:]
