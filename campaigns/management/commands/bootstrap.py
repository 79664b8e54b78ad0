"""Make a fresh install usable: AI config row, a demo campaign on extension 100, an admin login.

Idempotent: safe to run on every start. The admin password comes from TALKY_ADMIN_PASSWORD, else
one is generated once and kept in var/admin_password (mode 600) so it can be shown again.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from aioptions.selectors import get_ai_config
from campaigns.models import Campaign

DEMO = {
    "name": "Acme Dental reminders",
    "extension": "100",
    "greeting": "Hi, this is Acme Dental calling about your appointment. Is now a good time?",
    "system_prompt": (
        "Campaign: Acme Dental reminders\n"
        "You are a friendly receptionist for Acme Dental on a phone call. Confirm or reschedule the "
        "caller's appointment (Tuesday at 3 pm). Answer in one or two short spoken sentences, no lists "
        "or markdown. When the caller is done, say a short goodbye and end your reply with [END_CALL]."
    ),
    "preview_text": "Hi, this is Acme Dental calling about your appointment on Tuesday at three.",
    "is_default": True,
}


class Command(BaseCommand):
    help = "Create the AI config, a demo campaign (extension 100) and an admin user; print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("TALKY_ADMIN_USER", "admin"))
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, username: str, quiet: bool, **options):
        get_ai_config()
        if not Campaign.objects.exists():
            Campaign.objects.create(**DEMO)
            self.stdout.write("created demo campaign 'Acme Dental reminders' on extension 100")
        password = self._password()
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(f"created admin user {username!r}")
        elif os.environ.get("TALKY_ADMIN_PASSWORD"):
            user.set_password(password)
            user.save(update_fields=["password"])
        if not quiet:
            self.stdout.write(self.style.SUCCESS(
                f"Log in at http://127.0.0.1:{os.environ.get('TALKY_WEB_PORT', '8000')}/admin/ as {username!r} "
                f"with password {password!r} "
                f"(kept in {settings.VAR_DIR / 'admin_password'}; set TALKY_ADMIN_PASSWORD to choose one)"
            ))

    @staticmethod
    def _password() -> str:
        env = os.environ.get("TALKY_ADMIN_PASSWORD")
        if env:
            return env
        path = settings.VAR_DIR / "admin_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
