"""A config change on the options page reaches live calls on both bridges of the fleet, through
the Redis channel layer, also after Redis restarted under them: Kamailio + two run_sip_bridge
(voice pipeline against the fake Flux / LLM / Cartesia servers) + PostgreSQL + Redis + daphne,
all inside `unshare -n` (harness.py).

Why the assertion is the bridges' "received live" log line and not the next turn's voice: every
turn re-reads the config from the database, so a next-turn check would pass without Redis too.
The callers (sipp) send no audio, so no turn runs at all while the change is made: the only way
the new version can reach a call is the ``config.updated`` event on the ``ai_options`` group,
published by the web process into Redis and received by each call's LiveConfig in each bridge.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime

import pytest

from tests.fleet.harness import read, run_fleet, shell, sipp
from tests.fleet.test_fleet import LOAD, wait_both_busy
from tests.sip.peers import PY, ROOT, require

pytestmark = [pytest.mark.interop, pytest.mark.slow]

KIEFER = "228fca29-3a0a-435c-8728-5cb483251068"  # a catalog voice that is not the default
CALLS = 4
WEB = "http://127.0.0.1:8000"


REDIS_START = """
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir $T >> $T/redis.log 2>&1 &
REDIS=$!
EXTRA_PIDS="$EXTRA_PIDS $REDIS"
for i in $(seq 1 100); do redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
"""
# Redis restarted under live calls, empty (no persistence, as in deploy/local-cluster.sh)
REDIS_RESTART = "kill -TERM $REDIS; wait $REDIS 2>/dev/null\n" + REDIS_START


def prelude() -> str:
    """Redis, the fake providers and daphne inside the namespace, before the bridges start (they
    inherit REDIS_URL and the fakes' URLs). REDIS_PREFIX is pinned: CI exports its own prefix, and
    the group key read below must be the one the bridges write. Bounded polls on readiness."""
    q = shlex.quote
    daphne = q(str(ROOT / ".venv" / "bin" / "daphne"))
    return f"""
export REDIS_URL=redis://127.0.0.1:6379/0 REDIS_PREFIX=talky SIP_RTP_TIMEOUT_S=300
{REDIS_START}{q(PY)} -m aioptions.fakes.serve --env-file $T/fakes.env --log $T/fakes.json > $T/fakes.log 2>&1 &
EXTRA_PIDS="$EXTRA_PIDS $!"
for i in $(seq 1 100); do [ -f $T/fakes.env ] && break; sleep 0.1; done
. $T/fakes.env
{daphne} -b 127.0.0.1 -p 8000 talky.asgi:application > $T/web.log 2>&1 &
EXTRA_PIDS="$EXTRA_PIDS $!"
for i in $(seq 1 200); do curl -s -o /dev/null {WEB}/admin/login/ && break; sleep 0.1; done
"""


def wait_lines(pattern: str, count: int) -> str:
    """Until both bridge logs together hold ``count`` lines matching ``pattern`` (bounded: 20 s)."""
    return f"""
for i in $(seq 1 200); do
  [ "$(cat $T/bridgeA.log $T/bridgeB.log | grep -cE {shlex.quote(pattern)})" -ge {count} ] && break
  sleep 0.1
done
"""


def wait_listening(count: int) -> str:
    """Until ``count`` calls have joined the ai_options group in Redis (channels_redis keeps a group
    as a sorted set, key <prefix>:group:<name>; bounded: 30 s). A call joins once it is set up
    (recogniser connected, greeting started); only then is the page's change an event it can get."""
    return f"""
for i in $(seq 1 300); do
  [ "$(redis-cli -h 127.0.0.1 ZCARD talky:group:ai_options 2>/dev/null)" = {count} ] && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 ZCARD talky:group:ai_options > $T/listening.txt
"""


def page_save() -> str:
    """What the operator does: log in (admin form, CSRF cookie) and save a voice with the
    options page's HTMX form (POST /ai-options/save with X-CSRFToken)."""
    return f"""
J=$T/cookies
curl -sS -c $J -b $J -o /dev/null {WEB}/admin/login/
CSRF=$(awk '$6 == "csrftoken" {{print $7}}' $J)
curl -sS -c $J -b $J -o /dev/null -w '%{{http_code}}' -H "Referer: {WEB}/admin/login/" \\
    --data-urlencode "csrfmiddlewaretoken=$CSRF" -d username=admin -d password=x-test-pw \\
    -d next=/ai-options/ {WEB}/admin/login/ > $T/login.code
CSRF=$(awk '$6 == "csrftoken" {{print $7}}' $J)
now > $T/saved_at
curl -sS -c $J -b $J -o $T/save.html -w '%{{http_code}}' -H "X-CSRFToken: $CSRF" -H "HX-Request: true" \\
    -H "Referer: {WEB}/ai-options/" --data-urlencode "voice=cartesia:{KIEFER}" {WEB}/ai-options/save > $T/save.code
"""


def api_save() -> str:
    """What an integrator does: a bearer token and POST /api/v1/ai-options/config (JSON)."""
    return f"""
TOK=$({shlex.quote(PY)} manage.py create_api_token admin --name fleet-test)
curl -sS -o $T/api.json -w '%{{http_code}}' -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \\
    -d '{{"turn": {{"eot_threshold": 0.85}}}}' {WEB}/api/v1/ai-options/config > $T/api.code
"""


SNAPSHOT = """
import json
from aioptions.models import AIConfig
from telephony.models import BridgeNode, Call, Turn
hosts = {n.pk: n.host for n in BridgeNode.objects.all()}
live = {}
for c in Call.objects.filter(ended_at__isnull=True).values('bridge_node_id', 'sip_call_id'):
    live.setdefault(hosts.get(c['bridge_node_id'], '?'), []).append(c['sip_call_id'])
cfg = AIConfig.objects.get(pk=1)
print(json.dumps({'live': live, 'turns': Turn.objects.count(), 'version': cfg.version,
                  'voice': cfg.tts_voice_id, 'eot': cfg.eot_threshold}))
"""
RECEIVED = re.compile(r"call (\S+): config v(\d+) received live: llm \S+, voice (\S+)")
TURN_SENT = re.compile(r"call (\S+): turn settings sent to \S+: eot ([\d.]+)")


def by_call(log: str, rx: re.Pattern) -> dict[str, list[tuple[str, ...]]]:
    found: dict[str, list[tuple[str, ...]]] = {}
    for m in rx.finditer(log):
        found.setdefault(m.group(1), []).append(m.groups()[1:])
    return found


def test_a_change_on_the_page_reaches_live_calls_on_both_bridges_through_redis(tmp_path):
    require("redis-server", "redis-cli", "curl")
    t = tmp_path
    body = (sipp(t, "held", "caller_auth_wait_bye.xml", ip="127.0.0.22", port=5071,
                 extra=f"-m {CALLS} -r 10 -l {CALLS}", background=True)
            + wait_both_busy(CALLS)
            + wait_listening(CALLS)
            + page_save()
            + wait_lines(f"received live: .*voice cartesia/{KIEFER}", CALLS)
            + REDIS_RESTART
            + wait_lines("channel layer back", CALLS)
            + api_save()
            + wait_lines(r"turn settings sent to \S+: eot 0\.85", CALLS)
            + shell(SNAPSHOT, "snapshot.json")
            + "kill -TERM $HELD_PID 2>/dev/null; wait $HELD_PID 2>/dev/null\n")
    out = run_fleet(t, body, kam_extra=LOAD, drain_timeout=1, agent="pipeline", prelude=prelude())
    before = dict(ln.split() for ln in read(t, "open_before.txt").split("\n") if ln.strip())
    assert set(before) == {"127.0.0.11", "127.0.0.12"}, read(t, "open_before.txt") + out
    assert read(t, "listening.txt").strip() == str(CALLS), read(t, "listening.txt") + out
    assert read(t, "login.code") == "302", read(t, "login.code") + read(t, "web.log")[-1500:]
    assert read(t, "save.code") == "200" and "Saved." in read(t, "save.html"), read(t, "save.html")[-1500:]
    assert read(t, "api.code") == "200", read(t, "api.json") + read(t, "web.log")[-1500:]
    try:
        snap = json.loads(read(t, "snapshot.json").strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(read(t, "snapshot.json")[-1500:] + out) from None
    assert snap["voice"] == KIEFER and snap["eot"] == 0.85, snap
    # no turn ran while the changes were made: the per-turn database re-read cannot have carried them
    assert snap["turns"] == 0, snap
    page_version, api_version = str(snap["version"] - 1), str(snap["version"])
    for host, name in (("127.0.0.11", "A"), ("127.0.0.12", "B")):
        log = read(t, f"bridge{name}.log")
        live = set(snap["live"].get(host, []))
        assert live and len(live) == int(before[host]), (host, snap, before)
        received = by_call(log, RECEIVED)
        # every live call of this bridge got the page's change (its version, the new voice) ...
        assert {c for c, evs in received.items() if (page_version, f"cartesia/{KIEFER}") in evs} == live, \
            (host, received, live, log[-2500:])
        # Redis restarted empty: every call noticed, waited, joined the group again ...
        assert {c for c in live if f"call {c}: channel layer back" in log} == live, log[-2500:]
        # ... and then got the API's change: a new turn setting sent to its open recogniser at once
        assert {c for c, evs in received.items() if (api_version, f"cartesia/{KIEFER}") in evs} == live, received
        assert {c for c, evs in by_call(log, TURN_SENT).items() if ("0.85",) in evs} == live, log[-2500:]
    fakes = json.loads(read(t, "fakes.json") or "{}")
    configured = [c for c in fakes.get("flux_connections", [])
                  if any(m.get("type") == "ConfigureSuccess" and m.get("thresholds", {}).get("eot_threshold") == 0.85
                         for m in c["sent"])]
    assert len(configured) == CALLS, fakes.get("flux_connections")
    # the new voice was put to work before any turn: each call prewarmed it at the TTS fake (its
    # filler clips rendered in that voice); before the change only the default voice was asked for
    voices = [c["voice"] for c in fakes.get("tts_contexts", {}).values()]
    assert voices.count(KIEFER) >= CALLS and voices[0] != KIEFER, voices
    saved = float(read(t, "saved_at"))
    delays = sorted(stamp(m) - saved for name in "AB" for m in RECEIVED_AT.finditer(read(t, f"bridge{name}.log"))
                    if m.group(2) == page_version)
    print(f"page save -> live calls on both bridges: {CALLS} calls had the new version "
          f"{delays[0] * 1000:.0f}-{delays[-1] * 1000:.0f} ms after the POST was sent (login excluded)")


RECEIVED_AT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*call \S+: config v(\d+) received live", re.M)


def stamp(m: re.Match) -> float:
    """A bridge log line's time (Python logging's local-time asctime) as epoch seconds."""
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
