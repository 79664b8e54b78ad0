"""Issue a bearer token for the JSON API. The token is printed once; only its hash is stored."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from aioptions.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a staff user: curl -H 'Authorization: Bearer <token>' ..."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_staff:
            raise CommandError(f"user {username!r} is not staff; the API only accepts staff tokens")
        _, raw = ApiToken.issue(user, name=name)
        self.stdout.write(raw)
