"""python manage.py run_sip_bridge: the SIP UAS softphones register to and call."""

from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telephony.agents import AGENTS


def parse_range(value: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in value.split("-"))
    except ValueError:
        raise CommandError(f"--rtp-ports must look like 10000-20000, got {value!r}") from None
    if not (1024 <= lo < hi <= 65535) or hi - lo < 2:
        raise CommandError("--rtp-ports must be a range inside 1024-65535")
    return lo, hi


DEFAULT_FLEET_DRAIN_S = 30.0
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str):
    """The event loop the bridge runs on. Every call's media shares one loop, so its per-callback
    overhead is the bridge's capacity: uvloop (libuv, MIT/Apache-2.0) runs the same datagram, reader
    and timer work for less CPU than the stdlib selector loop (telephony.bench.wire measures both).
    ``auto`` takes uvloop when it is installed and falls back to asyncio when it is not."""
    if choice not in EVENT_LOOPS:
        raise CommandError(f"--event-loop must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise CommandError("--event-loop uvloop: the uvloop package is not installed") from None
        return asyncio.new_event_loop, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def _require_migrated() -> None:
    """A bridge on a database without its tables would take the first REGISTER and die with a
    traceback; say what to run instead, before any socket is opened."""
    from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot read the database: {exc}") from None
    if pending:
        raise CommandError(f"the database lacks {len(pending)} migration(s): run `python manage.py migrate` first")


class Command(BaseCommand):
    help = "Run the SIP bridge (UDP). Binds 127.0.0.1 unless --host says otherwise."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SIP_HOST)
        parser.add_argument("--port", type=int, default=settings.SIP_PORT)
        parser.add_argument("--rtp-ports", default=settings.SIP_RTP_PORTS)
        parser.add_argument("--max-calls", type=int, default=100)
        parser.add_argument("--agent", default="echo")
        parser.add_argument("--ring-ms", type=int, default=0, help="ring this long before answering")
        parser.add_argument("--rtp-timeout", type=float, default=settings.SIP_RTP_TIMEOUT_S)
        parser.add_argument("--advertise", metavar="ADDR", default=settings.SIP_ADVERTISE,
                            help="IP address put in SDP c=/o=, Contact and Via (the public or LAN address "
                                 "phones reach; no hostnames). Default: the address each request arrived on")
        parser.add_argument("--hold-timeout", metavar="SECONDS", type=float, default=settings.SIP_HOLD_TIMEOUT_S,
                            help="end a call on hold with no media after this long")
        parser.add_argument("--trusted", metavar="LIST", default=settings.SIP_TRUSTED_IPS,
                            help="comma list of IPs/CIDRs exempt from the per-source abuse limits "
                                 "(a proxy in front, a trunk)")
        parser.add_argument("--trusted-proxy", metavar="ADDR[,ADDR]", default="",
                            help="fleet mode: take SIP only from these proxies (Kamailio), which authenticate "
                                 "callers; other sources are dropped. RTP still flows to phones directly")
        parser.add_argument("--outbound-proxy", metavar="IP[:PORT]", default="",
                            help="fleet mode: send calls to registered extensions (manage.py dial, transfers) "
                                 "to this proxy, which knows where phones registered. Default: the "
                                 "--trusted-proxy address, port 5060")
        parser.add_argument("--drain-timeout", metavar="SECONDS", type=float, default=None,
                            help="on SIGTERM (or a drain request) refuse new calls with 503 and let live "
                                 "calls run this long before ending them with BYE. Default: 30 with "
                                 "--trusted-proxy (other bridges take the new calls), else 0 (BYE at once, "
                                 "as a lone bridge always did)")
        parser.add_argument("--metrics-port", type=int, default=0,
                            help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (loopback only)")
        parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=settings.SIP_EVENT_LOOP,
                            help="auto (default): uvloop when installed, else asyncio")

    def handle(self, *args, **opts):
        from telephony.bridge.config import build_policy, parse_advertise, parse_outbound_proxy, parse_proxies
        from telephony.bridge.runner import BridgeRunner

        _require_migrated()
        if opts["agent"] not in AGENTS:
            raise CommandError(f"unknown agent {opts['agent']!r} (known: {', '.join(sorted(AGENTS))})")
        try:
            advertise = parse_advertise(opts["advertise"])
            proxies = parse_proxies(opts["trusted_proxy"])
            outbound_proxy = parse_outbound_proxy(opts["outbound_proxy"], proxies)
            policy = build_policy(trusted=opts["trusted"], hold_timeout_s=opts["hold_timeout"], proxies=proxies)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        logging.getLogger("telephony").setLevel(logging.INFO)
        # Calls a dead bridge left open are finalised by the runner at start ("bridge lost"); the
        # open calls of other live bridges on this database are left alone.
        runner = BridgeRunner(host=opts["host"], port=opts["port"], rtp_ports=parse_range(opts["rtp_ports"]),
                              agent=opts["agent"], max_calls=opts["max_calls"], ring_ms=opts["ring_ms"],
                              rtp_timeout_s=opts["rtp_timeout"], publish_heartbeat=True,
                              advertise=advertise or "", policy=policy, proxies=proxies,
                              outbound_proxy=outbound_proxy)
        self.drain_timeout = opts["drain_timeout"]
        self.metrics_port = opts["metrics_port"]
        if not 0 <= self.metrics_port <= 65535:
            raise CommandError("--metrics-port must be a TCP port (0 = off)")
        if self.drain_timeout is None:
            self.drain_timeout = DEFAULT_FLEET_DRAIN_S if proxies else 0.0
        if not 0 <= self.drain_timeout <= 86400:
            raise CommandError("--drain-timeout must be between 0 and 86400 seconds")
        factory, loop_name = loop_factory(opts["event_loop"])
        logging.getLogger("telephony").info("event loop: %s", loop_name)
        try:
            with asyncio.Runner(loop_factory=factory) as loop_runner:
                failed = loop_runner.run(self._serve(runner))
        except OSError as exc:
            raise CommandError(f"cannot start the SIP bridge on {opts['host']}:{opts['port']}: {exc}") from None
        if failed:  # exit non-zero so systemd (Restart=on-failure) or the operator notices at once
            raise CommandError("the SIP listener failed; active calls were ended and the bridge stopped")
        self.stdout.write("SIP bridge stopped")

    async def _serve(self, runner) -> bool:
        """Serve until SIGINT, a drain (SIGTERM or the API) or a failed SIP socket; True when it failed.

        SIGTERM drains: 503 to OPTIONS/new INVITEs, live calls get --drain-timeout, then BYE. A
        second SIGTERM (or SIGINT) during the drain stops at once, still with BYE and records."""
        from telephony.bridge.drain import drain

        stop, drain_now = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_term() -> None:
            (stop if drain_now.is_set() else drain_now).set()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        runner.node.on_drain = drain_now.set
        if self.metrics_port:  # first, so a taken port stops us before any call is taken
            from telephony.metrics.serve import serve

            try:
                metrics = await serve(self.metrics_port)
            except OSError as exc:
                raise CommandError(f"cannot serve metrics on 127.0.0.1:{self.metrics_port}: {exc}") from None
        await runner.start()
        runner.runtime.ready()  # this process is the bridge's own: freeze the start-up heap (gcpause.py)
        if runner.recovered:
            self.stdout.write(f"finalised {runner.recovered} call(s) left open by a bridge that died")
        waits = [asyncio.ensure_future(e.wait()) for e in (runner.gateway.failed, stop, drain_now)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()
        if drain_now.is_set() and not stop.is_set() and not runner.gateway.failed.is_set():
            await drain(runner, self.drain_timeout, abort=stop)
        logging.getLogger("telephony.bridge").info("stopping: sending BYE to %d active call(s)",
                                                   runner.gateway.active_calls)
        await runner.stop()
        if self.metrics_port:
            metrics.close()
        return runner.gateway.failed.is_set()
