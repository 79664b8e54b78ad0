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

    def handle(self, *args, **opts):
        from telephony.bridge.config import build_policy, parse_advertise
        from telephony.bridge.runner import BridgeRunner

        if opts["agent"] not in AGENTS:
            raise CommandError(f"unknown agent {opts['agent']!r} (known: {', '.join(sorted(AGENTS))})")
        try:
            advertise = parse_advertise(opts["advertise"])
            policy = build_policy(trusted=opts["trusted"], hold_timeout_s=opts["hold_timeout"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        logging.getLogger("telephony").setLevel(logging.INFO)
        # Calls a dead bridge left open are finalised by the runner at start ("bridge lost"); the
        # open calls of other live bridges on this database are left alone.
        runner = BridgeRunner(host=opts["host"], port=opts["port"], rtp_ports=parse_range(opts["rtp_ports"]),
                              agent=opts["agent"], max_calls=opts["max_calls"], ring_ms=opts["ring_ms"],
                              rtp_timeout_s=opts["rtp_timeout"], publish_heartbeat=True,
                              advertise=advertise or "", policy=policy)
        try:
            failed = asyncio.run(self._serve(runner))
        except OSError as exc:
            raise CommandError(f"cannot start the SIP bridge on {opts['host']}:{opts['port']}: {exc}") from None
        if failed:  # exit non-zero so systemd (Restart=on-failure) or the operator notices at once
            raise CommandError("the SIP listener failed; active calls were ended and the bridge stopped")
        self.stdout.write("SIP bridge stopped")

    async def _serve(self, runner) -> bool:
        """Serve until SIGTERM/SIGINT or until the SIP socket fails; True when it failed."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.start()
        if runner.recovered:
            self.stdout.write(f"finalised {runner.recovered} call(s) left open by a bridge that died")
        failed = asyncio.ensure_future(runner.gateway.failed.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for t in (failed, stopped):
            t.cancel()
        logging.getLogger("telephony.bridge").info("stopping: sending BYE to %d active call(s)",
                                                   runner.gateway.active_calls)
        await runner.stop()
        return runner.gateway.failed.is_set()
