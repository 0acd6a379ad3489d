"""Simulation runs in Django admin, read-only: runs are started, cancelled and finished through
simulator.services (and the worker), never edited here."""

from django.contrib import admin
from django.http import HttpRequest

from simulator.models import SimulationRun


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "board", "status", "started_by", "duration_s", "seed", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["id", "board__title", "started_by__username"]
    list_select_related = ["board", "started_by"]
    exclude = ["results", "design"]  # megabytes: the API exports them

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SimulationRun | None = None) -> bool:
        return False
