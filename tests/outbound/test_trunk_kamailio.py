"""Trunk registration against a real registrar: the Debian Kamailio with
tests/outbound/kamailio/registrar.cfg (digest auth against a static htable credential, bindings in
memory, at most 20 s granted) and a real run_sip_bridge whose Trunk rows point at it, all inside
one private network namespace. Every wait is a bounded poll (of Kamailio's log or of the trunk
rows through manage.py shell); results are written as files into the test's dir."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.sip.peers import PY, bridge_env, manage_shell, prepare_db, require, run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CFG = Path(__file__).parent / "kamailio" / "registrar.cfg"
SETUP = """
from campaigns.models import Trunk
good = Trunk.objects.create(name="kamailio", host="127.0.0.1", port=5060, username="acct", password="s3cret",
                            register=True, register_expires=600)
bad = Trunk.objects.create(name="kamailio-wrong-pw", host="127.0.0.1", port=5060, username="acct",
                           password="wrong", register=True, register_expires=600)
print(good.pk, bad.pk)
"""
ROWS = ("import json; from campaigns.models import Trunk; print(json.dumps({t.pk: [t.registration_status, "
        "t.registration_error, t.registered_until is not None] for t in Trunk.objects.all()}))")
# exit 0 once the good trunk is registered and the bad one failed (what the admin shows)
SETTLED = """
import sys; from campaigns.models import Trunk
s = {t.name: t.registration_status for t in Trunk.objects.all()}
sys.exit(0 if s == {"kamailio": "registered", "kamailio-wrong-pw": "failed"} else 1)
"""


def script(tmp: Path) -> str:
    q = shlex.quote
    t = q(str(tmp))
    shell = f"{q(PY)} manage.py shell --no-imports -c"
    return f"""
T={t}
mkdir -p $T/run
KAM=""; BRIDGE=""
cleanup() {{
  [ -n "$BRIDGE" ] && kill -TERM $BRIDGE 2>/dev/null
  for i in $(seq 1 100); do [ -n "$BRIDGE" ] && kill -0 $BRIDGE 2>/dev/null || break; sleep 0.1; done
  [ -n "$BRIDGE" ] && kill -KILL $BRIDGE 2>/dev/null
  # Kamailio's main process stops its children on SIGTERM; a SIGKILL would orphan them
  if [ -n "$KAM" ]; then
    KIDS=$(pgrep -P $KAM); kill -TERM $KAM 2>/dev/null
    for i in $(seq 1 50); do kill -0 $KAM 2>/dev/null || break; sleep 0.1; done
    kill -KILL $KAM $KIDS 2>/dev/null
  fi
  wait 2>/dev/null
}}
trap cleanup EXIT
kamailio -DD -E -f {q(str(CFG))} -m 32 -M 8 -A "RUNDIR=\\"$T/run\\"" > $T/kam.log 2>&1 &
KAM=$!
K="kamcmd -s unix:$T/run/kamailio_ctl"
for i in $(seq 1 100); do $K core.version >/dev/null 2>&1 && break; sleep 0.1; done
$K core.version >/dev/null 2>&1 || {{ echo "kamailio not up"; exit 20; }}
{q(PY)} manage.py run_sip_bridge --agent echo --host 127.0.0.11 --port 5080 --rtp-ports 20000-20998 \\
    > $T/bridge.log 2>&1 &
BRIDGE=$!
settled=no
for i in $(seq 1 40); do
  {shell} {q(SETTLED)} 2>/dev/null && {{ settled=yes; break; }}
  sleep 0.5
done
echo "settled=$settled"
{shell} {q(ROWS)} > $T/rows_first.json
$K ul.dump > $T/uldump.txt 2>&1
# the binding granted 20 s is refreshed at 10 s: wait (bounded) for the second saved REGISTER
saved() {{ grep -c "REGISTER-SAVED user=acct" $T/kam.log; }}
for i in $(seq 1 300); do [ "$(saved)" -ge 2 ] && break; sleep 0.1; done
echo "saved=$(saved)"
{shell} {q(ROWS)} > $T/rows_refreshed.json
"""


def test_trunk_registers_to_kamailio_with_digest_and_refreshes(tmp_path):
    require("kamailio", "kamcmd", "unshare")
    env = bridge_env(tmp_path, SIP_NODE_TIMEOUT_S="15")
    prepare_db(env)
    good, bad = manage_shell(env, SETUP).split()
    out = run_in_netns(script(tmp_path), env, timeout=150)
    kam = (tmp_path / "kam.log").read_text(errors="replace")
    diag = f"rc={out.returncode}\n{out.stdout}\n{out.stderr[-2000:]}\n--- kam\n{kam[-3000:]}\n--- bridge\n" + \
        (tmp_path / "bridge.log").read_text(errors="replace")[-3000:]
    assert out.returncode == 0 and "settled=yes" in out.stdout, diag

    rows = json.loads((tmp_path / "rows_first.json").read_text())
    assert rows[good] == ["registered", "", True], diag  # status, no error, registered_until set
    # wrong password: the digest answer is challenged again -> failed, the registrar's refusal kept
    assert rows[bad] == ["failed", "401 Unauthorized", False], diag

    # the registrar holds the binding: the AOR of the good trunk with the bridge's contact
    uldump = (tmp_path / "uldump.txt").read_text()
    assert "AoR: acct" in uldump and "sip:acct@127.0.0.11:5080" in uldump, uldump
    # digest really happened: a challenged REGISTER before each saved one
    assert "REGISTER-CHALLENGE user=acct" in kam, diag

    # refreshed before expiry: a second REGISTER on the same Call-ID was accepted, still registered
    saved = [line for line in kam.splitlines() if "REGISTER-SAVED user=acct" in line]
    assert len(saved) >= 2, diag
    callids = {line.split("callid=")[1].split()[0] for line in saved}
    assert len(callids) == 1, saved  # one registration (refreshes keep the Call-ID)
    assert json.loads((tmp_path / "rows_refreshed.json").read_text())[good][0] == "registered", diag
