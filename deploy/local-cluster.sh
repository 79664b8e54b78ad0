#!/usr/bin/env bash
# A whole TalkyAI fleet on one machine, for trying it out: PostgreSQL (a throwaway cluster), Redis,
# Kamailio at the edge, two SIP bridges behind it, and daphne. Everything lives in one state
# directory and is stopped by PID.
#
#   deploy/local-cluster.sh up   [DIR]   # default DIR: var/cluster
#   deploy/local-cluster.sh status [DIR]
#   deploy/local-cluster.sh down [DIR]   # bridges drain first (SIGTERM), then the rest stops
#
# Addresses (all loopback): Kamailio udp 127.0.0.1:$EDGE_PORT (phones register and call here),
# bridges 127.0.0.11:5080 and 127.0.0.12:5080 (SIP from Kamailio only; RTP straight to phones),
# PostgreSQL 127.0.0.1:$PG_PORT, Redis 127.0.0.1:$REDIS_PORT, web http://127.0.0.1:$WEB_PORT.
# Ports default away from the standard ones so a machine's own services do not clash.
# Needs: the Debian packages kamailio kamailio-postgres-modules postgresql redis-server, and the
# venv (bash .ci/setup). Run as root (PostgreSQL's initdb then runs as the postgres user) or as a
# normal user that can run initdb itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CMD=${1:-up}
DIR=$(realpath -m "${2:-var/cluster}")
PG_PORT=${PG_PORT:-5433}
REDIS_PORT=${REDIS_PORT:-6380}
EDGE_PORT=${EDGE_PORT:-5060}
WEB_PORT=${WEB_PORT:-8000}
PY=$ROOT/.venv/bin/python
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
DB="postgres://postgres:x@127.0.0.1:$PG_PORT/talky"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: bounded poll
  local n=$(( $1 * 10 )) what=$2; shift 2
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "!! $what did not come up; logs in $DIR" >&2; return 1
}
start_bg() {  # start_bg NAME COMMAND...: background, log and pid file in $DIR
  local name=$1; shift
  "$@" > "$DIR/$name.log" 2>&1 &
  echo $! > "$DIR/$name.pid"
}

up() {
  mkdir -p "$DIR/run"
  if [ ! -d "$DIR/pg/base" ]; then
    mkdir -p "$DIR/pg" && chmod 755 "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
    as_pg "$PGBIN/initdb" -D "$DIR/pg" -A trust -U postgres >/dev/null
  fi
  [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$DIR/pg" start >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='talky'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE talky"
  start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$DIR"
  wait_for 10 redis redis-cli -p "$REDIS_PORT" ping

  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/talky" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  export TALKY_VAR_DIR="$DIR/var" MEDIA_ROOT="$DIR/media"
  "$PY" manage.py migrate --noinput -v0
  "$PY" manage.py bootstrap
  "$PY" manage.py kamailio_db
  "$PY" manage.py collectstatic --noinput -v0
  [ -s "$DIR/api_token" ] || (umask 077; "$PY" manage.py create_api_token admin > "$DIR/api_token")
  # Kamailio lets only SIP accounts in: a demo login for trying it (password kept in the state dir)
  [ -s "$DIR/sip_password" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))' \
    > "$DIR/sip_password")
  SIP_PW=$(cat "$DIR/sip_password") "$PY" manage.py shell --no-imports -c "
import os
from telephony.models import SipAccount
a = SipAccount.objects.filter(username='demo').first() or SipAccount(username='demo')
a.set_password(os.environ['SIP_PW']); a.active = True; a.save()"

  start_bg kamailio kamailio -DD -E -f "$ROOT/deploy/kamailio/kamailio.cfg" -m 64 -M 8 \
    -A "LISTEN=udp:127.0.0.1:$EDGE_PORT" -A "RUNDIR=\"$DIR/run\"" -A "DBURL=\"$DB\"" -A "SQLCON=\"fleet=>$DB\""
  local i=0
  for ip in 127.0.0.11 127.0.0.12; do
    i=$((i + 1))
    start_bg "bridge$i" "$PY" manage.py run_sip_bridge --host "$ip" --port 5080 --agent "${TALKY_AGENT:-echo}" \
      --rtp-ports "$((20000 + i * 2000))-$((20998 + i * 2000))" --trusted-proxy 127.0.0.1 --drain-timeout 30
  done
  start_bg web "$ROOT/.venv/bin/daphne" --bind 127.0.0.1 --port "$WEB_PORT" talky.asgi:application
  wait_for 20 "two bridges in Kamailio's dispatcher" \
    sh -c "kamcmd -s unix:$DIR/run/kamailio_ctl dispatcher.list | grep -c 'FLAGS: AP' | grep -qx 2"
  wait_for 20 daphne curl -sS -o /dev/null "http://127.0.0.1:$WEB_PORT/api/v1/sip/status"
  status
  echo "phones: SIP server 127.0.0.1:$EDGE_PORT, user demo, password $(cat "$DIR/sip_password"); call 100"
  echo "web: http://127.0.0.1:$WEB_PORT/admin/ (admin / $(cat "$DIR/var/admin_password" 2>/dev/null || echo '$TALKY_ADMIN_PASSWORD'))"
  echo "fleet: curl -H \"Authorization: Bearer \$(cat $DIR/api_token)\" http://127.0.0.1:$WEB_PORT/api/v1/sip/status"
}

status() {
  for name in redis kamailio bridge1 bridge2 web; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
  kamcmd -s "unix:$DIR/run/kamailio_ctl" dispatcher.list 2>/dev/null | grep -E "URI|FLAGS" | paste - - || true
  if alive web && [ -s "$DIR/api_token" ]; then
    curl -sS -H "Authorization: Bearer $(cat "$DIR/api_token")" "http://127.0.0.1:$WEB_PORT/api/v1/sip/status" \
      | "$PY" -c 'import json, sys
for n in json.load(sys.stdin)["nodes"]:
    print("node {id} {host}:{sip_port} {state}, calls {calls}/{max_calls}, heartbeat {heartbeat_age_s} s ago".format(**n))' || true
  fi
}

stop_pid() {  # stop_pid NAME SECONDS: SIGTERM, bounded wait, SIGKILL
  local name=$1 p kids; p=$(pid_of "$name")
  [ -n "$p" ] || return 0
  kids=$(pgrep -P "$p" || true)  # Kamailio's workers: gone with their parent, unless it is SIGKILLed
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 $(( $2 * 10 ))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" $kids 2>/dev/null || true
  rm -f "$DIR/$name.pid"
}

down() {
  stop_pid bridge1 40 & stop_pid bridge2 40 & wait   # drain (--drain-timeout 30) in parallel
  stop_pid web 10; stop_pid kamailio 10; stop_pid redis 10
  [ -d "$DIR/pg" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -t 30 stop >/dev/null 2>&1 || true
  echo "stopped (state kept in $DIR; rm -rf it to start afresh)"
}

case "$CMD" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|status|down [DIR]" >&2; exit 2 ;;
esac
