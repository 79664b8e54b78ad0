from django.core.management.base import BaseCommand

from aioptions.preview.service import cache


class Command(BaseCommand):
    help = "Delete every cached voice preview."

    def handle(self, *args, **options):
        files, size = cache().clear()
        self.stdout.write(f"removed {files} preview(s), freed {size / 1024:.1f} KiB")
