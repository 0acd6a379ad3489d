"""The operators' pages in Django admin: messages (hot and archived days), Celery task runs (with
"archive now"), every partition with its size, and live connections per server process. Writes go
through operations.services."""

import datetime as dt
from typing import cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts.models import User
from core.admin import ReadOnlyAdmin, ServiceAdmin
from messaging import archive
from operations import selectors, services
from operations.models import MessageRecord, Partition, ProcessConnections, TaskRun

ARCHIVED_PAGE_SIZE = 100
MESSAGE_FIELDS: tuple[str, ...] = ("id", "room", "sequence", "changed_sequence", "sender", "content")
MESSAGE_FIELDS += ("client_msg_id", "created_at", "edited_at", "deleted_at")


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


class MessageDayFilter(admin.SimpleListFilter):
    """A day (UTC): one partition in PostgreSQL, or an archived day (then shown from the archive)."""

    title = "day (UTC)"
    parameter_name = "day"

    def lookups(self, request, model_admin):
        today = timezone.now().astimezone(dt.UTC).date()
        archived = set(selectors.archived_days())
        days = sorted({day for day in archive.partition_days() if day <= today} | archived, reverse=True)
        return [(day.isoformat(), f"{day.isoformat()}{' (archived)' if day in archived else ''}") for day in days]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        day = _day(self.value())
        if day is None:
            raise IncorrectLookupParameters(f"Not a day: {self.value()!r}")
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return queryset.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))


@admin.register(MessageRecord)
class MessageRecordAdmin(ReadOnlyAdmin):
    """Every message, read-only. PostgreSQL holds the hot window (MESSAGE_HOT_DAYS); an archived
    day chosen in the day filter is shown from the archive (the scroll-back read path), or can be
    restored into PostgreSQL from Message archives ("restore"). The model: operations.MessageRecord."""

    list_display = ["created_at", "room", "sequence", "sender", "short_content", "edited_at", "deleted_at"]
    list_select_related = ["room", "sender"]
    list_filter = [MessageDayFilter]
    search_fields = ["room__name", "sender__username", "room__id__exact"]
    search_help_text = "Room name, room id or sender's user name."
    ordering = ["-created_at"]
    show_full_result_count = False
    fields = readonly_fields = MESSAGE_FIELDS

    @admin.display(description="content")
    def short_content(self, obj: MessageRecord) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

    def get_urls(self):
        view = self.admin_site.admin_view(self.archived_day_view)
        return [path("archived/<str:day>/", view, name="operations_messagerecord_archived")] + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        day = _day(request.GET.get("day"))
        if day is not None and day in selectors.archived_days():
            query = urlencode({"q": request.GET["q"]}) if request.GET.get("q") else ""
            url = reverse("admin:operations_messagerecord_archived", args=[day.isoformat()])
            return HttpResponseRedirect(f"{url}?{query}" if query else url)
        return super().changelist_view(request, extra_context)

    def archived_day_view(self, request: HttpRequest, day: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        parsed = _day(day)
        if parsed is None or parsed not in selectors.archived_days():
            self.message_user(request, f"{day} is not an archived day.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:operations_messagerecord_changelist"))
        search = request.GET.get("q", "")
        try:
            found = selectors.archived_day_messages(parsed, search=search)
        except archive.ArchiveUnavailable as error:
            self.message_user(request, error.message, messages.ERROR)
            found = []
        page = Paginator(found, ARCHIVED_PAGE_SIZE).get_page(request.GET.get("p"))
        context = self.admin_site.each_context(request) | {
            "opts": self.opts,
            "title": f"Archived messages of {parsed.isoformat()}",
            "day": parsed,
            "search": search,
            "page": page,
            "count": len(found),
        }
        return TemplateResponse(request, "admin/operations/messagerecord/archived_day.html", context)


@admin.register(TaskRun)
class TaskRunAdmin(ServiceAdmin, ReadOnlyAdmin):
    """Every Celery task run: status, progress, duration, errors (kept TASK_RUNS_KEEP_DAYS)."""

    change_list_template = "admin/operations/taskrun/change_list.html"
    list_display = ["name", "status", "progress", "requested_by", "queued_at", "started_at", "duration"]
    list_display += ["error_summary", "worker"]
    list_filter = ["status", "name"]
    search_fields = ["name", "task_id"]
    list_select_related = ["requested_by"]
    readonly_fields = [f.name for f in TaskRun._meta.fields]

    @admin.display(description="progress")
    def progress(self, obj: TaskRun) -> str:
        if obj.progress_total is None:
            return ""
        return f"{obj.progress_done}/{obj.progress_total} {obj.progress_note}".strip()

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: TaskRun) -> str:
        return "" if obj.duration_ms is None else f"{obj.duration_ms / 1000:.3f} s"

    @admin.display(description="error")
    def error_summary(self, obj: TaskRun) -> str:
        lines = obj.error.strip().splitlines()
        return lines[-1][:120] if lines else ""

    def get_urls(self):
        view = self.admin_site.admin_view(self.archive_now_view)
        return [path("archive-now/", view, name="operations_taskrun_archive_now")] + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # Reload while a run of the last hour is queued or running (an older one is probably lost).
        recent = timezone.now() - dt.timedelta(hours=1)
        active = TaskRun.objects.filter(status__in=[TaskRun.Status.QUEUED, TaskRun.Status.RUNNING])
        busy = active.filter(created_at__gte=recent).exists()
        return super().changelist_view(request, (extra_context or {}) | {"refresh": busy})

    def archive_now_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        started: list[TaskRun] = []
        user = cast(User, request.user)  # admin serves only signed-in staff
        if self.write(request, lambda: started.append(services.job_start(user=user, job="archive_now"))):
            link = reverse("admin:operations_taskrun_change", args=[started[0].pk])
            message = format_html('Archiving queued. <a href="{}">Follow its progress</a>.', link)
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:operations_taskrun_changelist"))


@admin.register(Partition)
class PartitionAdmin(ReadOnlyAdmin):
    """Every partition of every partitioned table, with its size (pg_total_relation_size: table,
    indexes and TOAST) and PostgreSQL's row estimate; totals per table and how far ahead the
    messages' daily partitions go."""

    change_list_template = "admin/operations/partition/change_list.html"
    list_display = ["name", "parent", "bounds", "approx_rows", "size"]
    list_filter = ["parent"]
    search_fields = ["name"]
    show_full_result_count = False

    @admin.display(description="size", ordering="total_bytes")
    def size(self, obj: Partition) -> str:
        return filesizeformat(obj.total_bytes)

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        per_table = Partition.objects.values("parent").annotate(bytes=Sum("total_bytes"), count=Count("name"))
        totals = [
            {"parent": row["parent"], "count": row["count"], "size": filesizeformat(row["bytes"] or 0)}
            for row in per_table.order_by("parent")
        ]
        today = timezone.now().astimezone(dt.UTC).date()
        days = set(archive.partition_days())
        ahead = 0
        while today + dt.timedelta(days=ahead + 1) in days:
            ahead += 1
        context = {
            "totals": totals,
            "today_exists": today in days,
            "days_ahead": ahead,
            "wanted_ahead": settings.MESSAGE_PARTITION_DAYS_AHEAD,
        }
        return super().changelist_view(request, (extra_context or {}) | context)


@admin.register(ProcessConnections)
class ProcessConnectionsAdmin(ReadOnlyAdmin):
    """Open WebSockets and event streams (SSE, long-poll) per server process, as each process
    reported them to Redis in the last CONNECTIONS_STALE_SECONDS; older entries are listed apart."""

    def get_urls(self):  # one page; the model has no table
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="operations_processconnections_changelist")]

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        live, stale = selectors.live_connections()
        totals: dict[str, int] = {}
        for entry in live:
            for transport, count in entry.connections.items():
                totals[transport] = totals.get(transport, 0) + count
        context = self.admin_site.each_context(request) | {
            "opts": self.opts,
            "title": "Live connections",
            "live": live,
            "stale": stale,
            "totals": sorted(totals.items()),
            "total": sum(totals.values()),
            "stale_after": settings.CONNECTIONS_STALE_SECONDS,
            "every": settings.CONNECTIONS_REPORT_SECONDS,
        }
        return TemplateResponse(request, "admin/operations/connections.html", context)
