import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from audit import selectors, services
from audit.models import GLOBAL_SCOPE


def _moment(value: str) -> dt.datetime:
    parsed = parse_datetime(value) if "T" in value or " " in value else None
    if parsed is None:
        try:
            parsed = dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
        except ValueError:
            raise CommandError(f"Not a date or time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Write audit entries as JSON lines, oldest first (the export is itself recorded)."

    def add_arguments(self, parser):
        parser.add_argument("--scope", default=GLOBAL_SCOPE)
        parser.add_argument("--since", type=_moment, help="From this date/time (UTC unless given).")
        parser.add_argument("--until", type=_moment, help="Before this date/time.")
        parser.add_argument("--action", default="", help="Only this action, e.g. room.delete.")
        parser.add_argument("--after-position", type=int, default=0, help="Only entries after this position.")
        parser.add_argument("--output", "-o", help="A file to write (default: standard output).")

    def handle(self, *args, scope, since, until, action, after_position, output, **options):
        filters = selectors.Filters(scope=scope, after_position=after_position, since=since, until=until, action=action)
        lines = services.export_lines(actor=None, via="command", filters=filters)
        if not output:
            for line in lines:
                self.stdout.write(line, ending="")
            return
        count = 0
        with open(output, "w", encoding="utf-8") as stream:
            for line in lines:
                stream.write(line)
                count += 1
        self.stderr.write(f"{count} entries written to {output}")
