import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from messaging.archive import archive_day, days_to_archive


class Command(BaseCommand):
    help = "Archive message days outside the hot window to object storage, then drop their partitions."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List the days that would be archived.")
        parser.add_argument("--before", type=dt.date.fromisoformat, help="Only days before this date (YYYY-MM-DD).")

    def handle(self, *args, dry_run: bool, before: dt.date | None, **options):
        days = days_to_archive(before)
        if not days:
            self.stdout.write("Nothing to archive.")
            return
        failed = 0
        for day in days:
            if dry_run:
                self.stdout.write(f"would archive {day}")
                continue
            try:
                record = archive_day(day)
            except Exception as error:
                failed += 1
                self.stderr.write(self.style.ERROR(f"{day}: failed: {error}"))
                continue
            if record is None:
                self.stdout.write(f"{day}: another worker is archiving it")
            else:
                self.stdout.write(
                    self.style.SUCCESS(f"{day}: {record.rows} rows, {record.bytes} bytes -> {record.key}")
                )
        if failed:
            raise CommandError(f"{failed} day(s) failed; partitions kept. Re-run to resume.")
