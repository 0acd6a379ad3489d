"""Simulation runs of a board's design (docs/protocol.md "Simulations"). The engine
(simulator.engine) knows nothing of these: a Celery task (simulator.tasks) runs it and writes here."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from boards.models import Board


class SimulationRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="simulation_runs")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    seed = models.BigIntegerField()
    duration_s = models.FloatField()
    # What the run was asked for besides seed and duration: speed, max_requests, label.
    parameters = models.JSONField(default=dict)
    # The design as extracted from the board (simulator.designs) at `board_sequence`: the run is
    # reproducible from this row alone, whatever the board becomes.
    design = models.JSONField()
    board_sequence = models.BigIntegerField(default=0)
    # Faults given at the start, then those injected during the run, as the engine took them.
    faults = models.JSONField(default=list)
    # The latest live figures (a Snapshot) with `t` and `fraction`; null until the worker reports.
    progress = models.JSONField(null=True, blank=True)
    results = models.JSONField(null=True, blank=True)
    # The headline figures of `results` (simulator.payloads.run_summary), kept apart so that lists
    # of runs never load whole results (a long run's time series is megabytes).
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the worker last reported (progress or start): a running run silent for SIM_STALE_AFTER_S
    # lost its worker (simulator.services.runs_reap).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["board", "created_at"], name="simrun_board_created"),
            models.Index(
                fields=["started_by"],
                name="simrun_active_by_user",
                condition=models.Q(status__in=["queued", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of board {self.board_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in self.ACTIVE


class SimulationCommand(models.Model):
    """A fault injected into a live run: stored by the web process, taken by the worker that runs
    it at its next report (a few times a second), which records when (simulated time) it applied."""

    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="commands")
    fault = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_at_s = models.FloatField(null=True, blank=True)  # simulated time it took effect
    rejected = models.TextField(blank=True, default="")  # why the engine refused it (too late, ...)

    class Meta:
        indexes = [
            models.Index(fields=["run"], name="simcommand_pending", condition=models.Q(applied_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"fault for {self.run_id}"
