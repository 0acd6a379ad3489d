import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from messaging.archive import ArchiveError, restore_day
from messaging.models import MessageArchive


class Command(BaseCommand):
    help = "Put an archived day of messages back into PostgreSQL (the archive object is kept)."

    def add_arguments(self, parser):
        parser.add_argument("day", type=dt.date.fromisoformat, help="YYYY-MM-DD")

    def handle(self, *args, day: dt.date, **options):
        try:
            record = restore_day(day)
        except (ArchiveError, MessageArchive.DoesNotExist) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"{day}: {record.rows} rows restored into {record.partition}"))
