"""Deliver pending post-call webhooks until stopped (or once with --once): the retry worker for a
deployment that does not run it inside the bridge."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from telephony.actions import webhooks


class Command(BaseCommand):
    help = ("Deliver pending post-call webhooks (retries with backoff; state in WebhookDelivery) and finish "
            "those a crashed bridge left preparing")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args, **opts) -> None:
        if opts["once"]:
            n = asyncio.run(webhooks.deliver_due())
            self.stdout.write(f"attempted {n}")
            return
        asyncio.run(webhooks.worker(asyncio.Event()))
