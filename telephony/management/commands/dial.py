"""python manage.py dial DEST --campaign ID: place one call and print each SIP step.

DEST is a +E.164 number (through the campaign's trunk, inside its allowed prefixes), a sip: URI, or
an extension registered to the running bridge (in a fleet: registered with the Kamailio in front,
which the bridge sends the INVITE to: see --outbound-proxy of run_sip_bridge). By default the
running ``run_sip_bridge`` places the call (over its loopback control channel: it owns the
registrar, the trunks' registrations and caps). ``--standalone`` instead runs a short-lived bridge
inside this command on its own port (numbers and SIP URIs only: nobody is registered to it) and
keeps the call up until the far end or the agent hangs up, or ``--max-seconds``. Exit status: 0
answered, 1 not answered, 2 refused.
"""

from __future__ import annotations

import asyncio
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from campaigns.outbound import Refused
from telephony.agents import AGENTS
from telephony.management.commands.run_sip_bridge import parse_range


class Command(BaseCommand):
    help = "Place one outbound call (prints each SIP step and the outcome; exit 0 when answered)."

    def add_arguments(self, parser):
        parser.add_argument("dest", help="+E.164 number, sip: URI or a registered extension")
        parser.add_argument("--campaign", type=int, default=None, help="campaign id (its trunk, greeting, prompt)")
        parser.add_argument("--ring-timeout", type=float, default=30.0, help="CANCEL after ringing this long")
        parser.add_argument("--standalone", action="store_true",
                            help="run a bridge inside this command instead of asking the running one")
        parser.add_argument("--agent", default="greeting", help="standalone: the agent (echo, greeting, pipeline)")
        parser.add_argument("--port", type=int, default=0, help="standalone: SIP port (0: any free port)")
        parser.add_argument("--rtp-ports", default=settings.SIP_RTP_PORTS)
        parser.add_argument("--max-seconds", type=float, default=120.0,
                            help="standalone: hang up an answered call after this long")

    def handle(self, *args, **opts):
        if opts["agent"] not in AGENTS:
            raise CommandError(f"unknown agent {opts['agent']!r} (known: {', '.join(sorted(AGENTS))})")
        runner = self._standalone if opts["standalone"] else self._via_bridge
        code = asyncio.run(runner(opts))
        sys.stdout.flush()
        if code:
            sys.exit(code)

    def _step(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _report(self, msg: dict) -> int:
        if "refused" in msg:
            self.stderr.write(f"refused: {msg['refused']} (nothing was sent)")
            return 2
        result = msg.get("result") or {}
        extra = f", setup {result['setup_ms']} ms" if result.get("setup_ms") is not None else ""
        self._step(f"call {result.get('call_id', '')} record {result.get('record_id')}{extra}")
        return 0 if result.get("outcome") == "answered" else 1

    async def _via_bridge(self, opts) -> int:
        from telephony.bridge.control import dial_via_bridge

        try:
            msg = await dial_via_bridge(opts["dest"], opts["campaign"], ring_timeout_s=opts["ring_timeout"],
                                        on_step=self._step)
        except ConnectionError as exc:
            raise CommandError(f"{exc}. Start `manage.py run_sip_bridge`, or use --standalone for numbers "
                               "and SIP URIs.") from None
        return self._report(msg)

    async def _standalone(self, opts) -> int:
        from telephony.bridge.runner import BridgeRunner

        runner = BridgeRunner(host="127.0.0.1", port=opts["port"], rtp_ports=parse_range(opts["rtp_ports"]),
                              agent=opts["agent"], publish_heartbeat=False)
        await runner.start()
        self._step(f"standalone bridge on udp:127.0.0.1:{runner.gateway.port}")
        try:
            try:
                result = await runner.outbound.place(opts["dest"], opts["campaign"],
                                                     ring_timeout_s=opts["ring_timeout"], on_step=self._step)
            except Refused as exc:
                return self._report({"refused": str(exc)})
            code = self._report({"result": result.__dict__})
            dlg = runner.gateway.dialogs.get(result.call_id)
            if result.outcome == "answered" and dlg is not None and dlg.call is not None:
                try:
                    await asyncio.wait_for(dlg.call.ended.wait(), opts["max_seconds"])
                    self._step(f"call ended: {dlg.call.end_reason}")
                except TimeoutError:
                    self._step(f"hanging up after {opts['max_seconds']:g} s")
            return code
        finally:
            await runner.stop()
