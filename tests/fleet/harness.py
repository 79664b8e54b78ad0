"""A whole fleet inside one private network namespace: a throwaway PostgreSQL cluster (in a
/tmp dir the postgres user can reach, removed at exit; logs copied to the test's dir), the
Debian Kamailio with deploy/kamailio/kamailio.cfg, two real run_sip_bridge processes behind it,
and sipp/sipsak as phones. Every process is started by the script, stopped by its PID (trap on
exit), and every wait is a bounded poll of a log file or of kamcmd.

Addresses: proxy 127.0.0.1:5060, bridges 127.0.0.11:5080 / 127.0.0.12:5080, callers .21+,
phones .31+. Results are read by the script (DB queries through manage.py shell, written as files
into the temp dir) because the database is gone when the namespace ends.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from tests.sip.peers import PY, ROOT, bridge_env, require, run_in_netns

PG = Path("/usr/lib/postgresql/15/bin")
SCENARIO_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
"""
INVITE = """  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[remote_ip]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: fleet-test
      {auth}Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
"""
ACK_407 = """  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[remote_ip]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
"""
IN_DIALOG = """  <send{retrans}><![CDATA[
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[caller]@[remote_ip]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
"""
ANSWER_BYE = """  <recv request="BYE" timeout="120000"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
"""


def caller_scenario(*, auth: bool, hangup: str = "caller") -> str:
    """A UAC that works through a proxy (built-in uac sends ACK/BYE without Route): optional
    407 + digest, then ACK/BYE along the Record-Route. ``hangup="bridge"``: wait for the far end's BYE.

    The bridges ring 50 ms (--ring-ms 50): Kamailio's UDP workers relay a 180 and a 200 sent back to
    back in either order, and sipp cannot take a 180 after the 200 (an optional="global" 180 rewinds
    its scenario to before the 200 and the call then times out)."""
    cseq = 2 if auth else 1
    parts = [SCENARIO_HEAD.format(name="fleet caller")]
    if auth:
        parts += [INVITE.format(cseq=1, auth=""), '  <recv response="100" optional="true"/>\n',
                  '  <recv response="407" auth="true"/>\n', ACK_407]
    parts += [INVITE.format(cseq=cseq, auth="[authentication]\n      " if auth else ""),
              '  <recv response="100" optional="true"/>\n', '  <recv response="180" optional="true"/>\n',
              '  <recv response="200" rtd="true" rrs="true"/>\n',
              IN_DIALOG.format(method="ACK", cseq=cseq, retrans="")]
    if hangup == "bridge":
        parts.append(ANSWER_BYE)
    else:
        parts += ['  <pause/>\n', IN_DIALOG.format(method="BYE", cseq=cseq + 1, retrans=' retrans="500"'),
                  '  <recv response="200"/>\n']
    parts.append("</scenario>\n")
    return "".join(parts)


def write_scenarios(tmp: Path) -> None:
    (tmp / "caller_auth.xml").write_text(caller_scenario(auth=True))
    (tmp / "caller_auth_wait_bye.xml").write_text(caller_scenario(auth=True, hangup="bridge"))
    (tmp / "caller_trusted.xml").write_text(caller_scenario(auth=False))


def fleet_env(tmp: Path) -> dict:
    require("kamailio", "kamcmd", "sipp", "sipsak", "unshare")
    if not (PG / "initdb").exists() or not shutil.which("runuser"):
        require("initdb-postgresql-15")  # skips (or fails in CI) naming what is missing
    return bridge_env(tmp, DATABASE_URL="postgres://postgres@127.0.0.1:5432/talky", SIP_NODE_TIMEOUT_S="15")


def sipp(tmp: Path, name: str, scenario: str, *, ip: str, port: int, extra: str, auth: bool = True,
         background: bool = False) -> str:
    """A sipp command line (stats/errors in $T/<name>.*); ``background`` sets $<NAME>_PID."""
    creds = "-key caller bob -au bob -ap other" if auth else "-key caller edge"
    q = shlex.quote
    cmd = (f"timeout 150 sipp -sf {q(str(tmp / scenario))} 127.0.0.1:5060 -s 100 {creds} -i {ip} -p {port} "
           f"-mi {ip} -nostdin -timeout 140 -recv_timeout 20000 -trace_stat -stf {q(str(tmp / name))}.csv "
           f"-trace_err -error_file {q(str(tmp / name))}.err {extra} > {q(str(tmp / name))}.out 2>&1")
    if background:
        return f"{cmd} &\n{name.upper()}_PID=$!\n"
    return f"{cmd}; echo $? > {q(str(tmp / name))}.rc\n"


def fleet_script(tmp: Path, body: str, *, drain_timeout: float = 30, kam_extra: str = "",
                 kam_cfg: Path | None = None, agent: str = "echo", prelude: str = "") -> str:
    """Bring the fleet up, run ``body``, tear everything down (also on failure).

    ``prelude`` runs once the database is ready and before Kamailio and the bridges start (e.g.
    Redis, fake providers, exported settings the bridges must see); every PID it appends to
    ``$EXTRA_PIDS`` is stopped at exit after the bridges."""
    q = shlex.quote
    t = q(str(tmp))
    kam_cfg = q(str(kam_cfg or ROOT / "deploy" / "kamailio" / "kamailio.cfg"))
    db = "postgres://postgres:x@127.0.0.1:5432/talky"
    bridges = ""
    for name, ip, rtp in (("A", "127.0.0.11", "20000-20998"), ("B", "127.0.0.12", "22000-22998")):
        log = q(str(tmp / f"bridge{name}.log"))
        bridges += f"""
{q(PY)} manage.py run_sip_bridge --agent {agent} --host {ip} --port 5080 --rtp-ports {rtp} \\
    --trusted-proxy 127.0.0.1 --drain-timeout {drain_timeout} --max-calls 50 --ring-ms 50 > {log} 2>&1 &
BRIDGE_{name}=$!
"""
    return f"""
T={t}
PG={q(str(PG))}
KAM=""; BRIDGE_A=""; BRIDGE_B=""; PGD=/nonexistent; EXTRA_PIDS=""
cleanup() {{
  for p in $BRIDGE_A $BRIDGE_B; do kill -TERM $p 2>/dev/null; done
  for i in $(seq 1 100); do kill -0 $BRIDGE_A 2>/dev/null || kill -0 $BRIDGE_B 2>/dev/null || break; sleep 0.1; done
  for p in $BRIDGE_A $BRIDGE_B; do kill -KILL $p 2>/dev/null; done
  for p in $EXTRA_PIDS; do kill -TERM $p 2>/dev/null; done
  # Kamailio's main process stops its children on SIGTERM; a SIGKILL would orphan them
  if [ -n "$KAM" ]; then
    KIDS=$(pgrep -P $KAM); kill -TERM $KAM 2>/dev/null
    for i in $(seq 1 50); do kill -0 $KAM 2>/dev/null || break; sleep 0.1; done
    kill -KILL $KAM $KIDS 2>/dev/null
  fi
  wait 2>/dev/null
  runuser -u postgres -- $PG/pg_ctl -D $PGD/pg -m immediate -t 30 stop >/dev/null 2>&1
  cp $PGD/pgl/pg.log $T/pg.log 2>/dev/null; rm -rf "$PGD"
}}
trap cleanup EXIT
# the cluster lives beside the test's dir: pytest's temp tree is not traversable by the postgres user
PGD=$(mktemp -d /tmp/talky-fleet-pg.XXXXXX) && chmod 755 $PGD || exit 10
mkdir -p $PGD/pg $PGD/pgl $T/run && chown postgres $PGD/pg $PGD/pgl
runuser -u postgres -- $PG/initdb -D $PGD/pg -A trust -U postgres >/dev/null || exit 11
runuser -u postgres -- $PG/pg_ctl -D $PGD/pg -l $PGD/pgl/pg.log -w -t 30 \\
    -o "-c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGD/pgl -c fsync=off" start >/dev/null || exit 12
psql -h 127.0.0.1 -U postgres -q -c "CREATE DATABASE talky" || exit 13
{q(PY)} manage.py migrate --noinput -v0 || exit 14
{q(PY)} manage.py bootstrap --quiet || exit 15
{q(PY)} manage.py kamailio_db > $T/kamailio_db.out || exit 16
{q(PY)} manage.py shell --no-imports -c "
from telephony.models import SipAccount
for u, p, active in (('bob', 'other', True), ('alice', 's3cret', True), ('carol', 'gone', False)):
    a = SipAccount(username=u, realm='talky', active=active); a.set_password(p); a.save()
" || exit 17
{prelude}
kamailio -DD -E -f {kam_cfg} -m 64 -M 8 -A "RUNDIR=\\"$T/run\\"" -A 'DBURL="{db}"' \\
    -A 'SQLCON="fleet=>{db}"' {kam_extra} > $T/kam.log 2>&1 &
KAM=$!
K="kamcmd -s unix:$T/run/kamailio_ctl"
{bridges}
ap() {{ $K dispatcher.list 2>/dev/null | grep -c "FLAGS: AP"; }}
for i in $(seq 1 600); do [ "$(ap)" = 2 ] && break; sleep 0.1; done
[ "$(ap)" = 2 ] || {{ echo "fleet not up: $($K dispatcher.list 2>&1)"; exit 18; }}
now() {{ date +%s.%N; }}
echo "fleet up at $(now)"
{body}
"""


def run_fleet(tmp: Path, body: str, *, timeout: float = 280, **kw) -> str:
    write_scenarios(tmp)
    out = run_in_netns(fleet_script(tmp, body, **kw), fleet_env(tmp), timeout=timeout)
    return f"rc={out.returncode}\n--- stdout\n{out.stdout[-4000:]}\n--- stderr\n{out.stderr[-4000:]}"


def shell(code: str, out: str) -> str:
    """A manage.py shell snippet for the fleet script that writes its print()s to $T/<out>."""
    return f"{shlex.quote(PY)} manage.py shell --no-imports -c {shlex.quote(code)} > $T/{out} 2>&1\n"


def read(tmp: Path, name: str) -> str:
    path = tmp / name
    return path.read_text(errors="replace") if path.exists() else ""
