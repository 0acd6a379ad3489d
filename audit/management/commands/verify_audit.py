from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditChain, AuditEntry
from audit.services import verify_chain


class Command(BaseCommand):
    help = "Check the audit log's hash chains and name the first broken entry (docs/audit.md)."

    def add_arguments(self, parser):
        parser.add_argument("--scope", help="One chain (default: every chain).")

    def handle(self, *args, scope: str | None, **options):
        if scope:
            scopes = [scope]
        else:
            known = set(AuditChain.objects.values_list("scope", flat=True))
            scopes = sorted(known | set(AuditEntry.objects.values_list("scope", flat=True).distinct()))
        broken = 0
        for one in scopes:
            verdict = verify_chain(scope=one)
            if verdict.broken is None:
                self.stdout.write(self.style.SUCCESS(f"{one}: ok, {verdict.checked} entries, head {verdict.head_hash}"))
            else:
                broken += 1
                self.stderr.write(
                    self.style.ERROR(
                        f"{one}: BROKEN at {verdict.broken} ({verdict.checked} entries verified before it)"
                    )
                )
        if not scopes:
            self.stdout.write("No audit entries yet.")
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification")
