import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from messaging.archive import verify_day
from messaging.models import MessageArchive


class Command(BaseCommand):
    help = "Read archived days back from storage and check their checksums and row counts."

    def add_arguments(self, parser):
        parser.add_argument("day", nargs="?", type=dt.date.fromisoformat, help="One day (default: all).")

    def handle(self, *args, day: dt.date | None, **options):
        statuses = [MessageArchive.Status.VERIFIED, MessageArchive.Status.DROPPED, MessageArchive.Status.RESTORED]
        days = [day] if day else list(MessageArchive.objects.filter(status__in=statuses).values_list("day", flat=True))
        bad = 0
        for one in sorted(days):
            try:
                record = verify_day(one)
            except Exception as error:
                bad += 1
                self.stderr.write(self.style.ERROR(f"{one}: {error}"))
            else:
                self.stdout.write(self.style.SUCCESS(f"{one}: ok ({record.rows} rows, sha256 {record.sha256[:12]}…)"))
        if bad:
            raise CommandError(f"{bad} archive(s) failed verification")
