from django.core.management.base import BaseCommand
from django.db import connection

from messaging.models import MessagePartition


class Command(BaseCommand):
    help = "List message partitions with their row counts and sizes."

    def add_arguments(self, parser):
        parser.add_argument("--exact", action="store_true", help="Count rows exactly (slow on big partitions).")

    def handle(self, *args, exact: bool, **options):
        self.stdout.write(f"{'partition':<32}{'rows':>12}{'size':>12}  bounds")
        for partition in MessagePartition.objects.all():
            rows = partition.approx_rows
            if exact:
                with connection.cursor() as cursor:
                    cursor.execute(f'SELECT count(*) FROM "{partition.name}"')
                    rows = cursor.fetchone()[0]
            size = f"{partition.total_bytes / 1024 / 1024:.1f} MB"
            self.stdout.write(f"{partition.name:<32}{rows:>12}{size:>12}  {partition.bounds}")
