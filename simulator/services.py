"""Every write to simulations goes through here: REST views, the socket's frames and the Celery task
that runs the engine (docs/protocol.md "Simulations").

A run is started here (the board's design extracted and validated, the quotas checked under the
user's row lock, the row inserted, the task enqueued after commit), then executed by
simulator.tasks.run_simulation in a Celery worker, which claims it, reports progress a few times a
second (`run_report`: the latest figures written to the row and streamed to the board's sockets as
`simulation.progress`; pending faults and the cancel flag read back), and stores the results
(`run_finish`). Events go to the board's group (`board.<id>`) after commit, like every event.
"""

import datetime
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from boards import services as board_services
from boards.models import Board
from boards.selectors import board_access
from core.errors import ApplicationError, Conflict, InvalidInput
from rooms import access
from simulator import designs, gallery, selectors
from simulator.engine import analysis
from simulator.engine.design import Design
from simulator.engine.faults import Fault, check_fault
from simulator.models import SimulationCommand, SimulationRun
from simulator.payloads import run_payload, run_summary
from workspaces import limits

logger = logging.getLogger(__name__)

Status = SimulationRun.Status
MAX_SPEED = 1000.0
DEFAULT_SPEED = 1.0
LABEL_MAX_LENGTH = 120
MAX_FAULTS = 50


class QuotaExceeded(ApplicationError):
    code = "quota_exceeded"
    status = 403
    message = "Over the simulation quota."


def _run_frame(run: SimulationRun, frame_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": frame_type, "board": str(run.board_id), "run": str(run.pk), **extra}


def _announce(run: SimulationRun, frame: dict[str, Any]) -> None:
    board_services.send_board_frame(run.board_id, frame)


# -- templates ------------------------------------------------------------------------------------


def board_from_template(*, user: User, room_id: object, template_id: object, title: object = None) -> Board:
    """A new board whose document holds the template's components and arrows: the board is
    created as any board is, and the elements go in as its first update (numbered and stored like
    any update)."""
    template = gallery.template_get(template_id)
    if template is None:
        names = ", ".join(t["id"] for t in gallery.templates())
        raise InvalidInput(f"No such template (one of {names}).", fields={"template": [f"One of {names}."]})
    with transaction.atomic():
        board = board_services.board_create(user=user, room_id=room_id, title=title or template["title"])
        update = gallery.template_update(template, user_id=user.pk)
        board_services.board_update_apply(user=user, board_id=board.pk, update=update, client_update_id=uuid.uuid4())
    board.refresh_from_db(fields=["last_sequence", "size"])
    return board


# -- starting ----------------------------------------------------------------------------------


def _number(
    data: dict, name: str, *, default: float | None, low: float, high: float | None, low_open: bool
) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number.", fields={name: ["Must be a number."]})
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        if high is not None:
            bound += f" and at most {high:g}"
        raise InvalidInput(f"{name} must be {bound}.", fields={name: [f"Must be {bound}."]})
    return float(value)


def _int(data: dict, name: str, *, low: int, high: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput(f"{name} must be an integer.", fields={name: ["Must be an integer."]})
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name} must be {bound}.", fields={name: [f"Must be {bound}."]})
    return int(value)


def _faults(value: object, design: dict[str, Any]) -> list[Fault]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("faults must be a list.", fields={"faults": ["Must be a list of faults."]})
    if len(value) > MAX_FAULTS:
        raise InvalidInput(f"At most {MAX_FAULTS} faults.", fields={"faults": [f"At most {MAX_FAULTS}."]})
    return [fault_parse(item, design, field="faults") for item in value]


def fault_parse(value: object, design: dict[str, Any], *, field: str = "fault") -> Fault:
    """A fault from JSON, checked against the design (its component must be in it, and may take it)."""
    kinds = {c["id"]: c["kind"] for c in design["components"]}
    if not isinstance(value, dict):
        raise InvalidInput(
            "A fault is an object.", fields={field: ["Each fault is an object {kind, component_id, ...}."]}
        )
    try:
        fault = Fault.from_json(value)
    except (KeyError, TypeError, ValueError) as error:
        message = f"Not a fault: {error!s:.100}" if not isinstance(error, KeyError) else f"A fault needs {error}."
        raise InvalidInput(message, fields={field: [message]}) from None
    numbers = (fault.at_s, fault.latency_ms, fault.error_rate, fault.factor, fault.until_s or 0.0)
    why = "every figure must be finite" if not all(math.isfinite(v) for v in numbers) else check_fault(fault, kinds)
    if why:
        raise InvalidInput(f"Fault on '{fault.component_id}': {why}.", fields={field: [why]})
    return fault


def _expected_requests(design: dict[str, Any], duration_s: float) -> float:
    parsed = Design.from_json(design)
    return sum(analysis.peak_rate(c) for c in parsed.components if c.kind == "client") * duration_s


@dataclass(frozen=True)
class RunRequest:
    duration_s: float
    seed: int
    speed: float | None
    max_requests: int
    label: str


def _run_request(data: dict[str, Any], design: dict[str, Any]) -> RunRequest:
    duration = _number(data, "duration_s", default=60.0, low=0.0, high=None, low_open=True)
    assert duration is not None
    if duration > settings.SIM_MAX_DURATION_S:
        message = f"A run simulates at most {settings.SIM_MAX_DURATION_S} seconds (asked: {duration:g})."
        raise QuotaExceeded(message, fields={"duration_s": [message]})
    seed = _int(data, "seed", low=0, high=2**53)
    speed = _number(data, "speed", default=DEFAULT_SPEED, low=0.0, high=MAX_SPEED, low_open=True)
    if speed is not None and duration / speed > settings.SIM_MAX_WALL_S:
        message = (
            f"At speed {speed:g} this run would take {duration / speed:,.0f} s; a run takes at most "
            f"{settings.SIM_MAX_WALL_S} s of a worker's time: raise the speed (or null: as fast as possible)."
        )
        raise QuotaExceeded(message, fields={"speed": [message]})
    cap = settings.SIM_MAX_REQUESTS
    asked = _int(data, "max_requests", low=1)
    if asked is not None and asked > cap:
        message = f"A run makes at most {cap:,} requests (asked: {asked:,})."
        raise QuotaExceeded(message, fields={"max_requests": [message]})
    if asked is None:
        expected = _expected_requests(design, duration)
        if expected > cap:
            message = (
                f"This run would make about {expected:,.0f} requests (the clients' peak rate × {duration:g} s); "
                f"a run makes at most {cap:,}: shorten it, lower the rate, or set max_requests."
            )
            raise QuotaExceeded(message, fields={"duration_s": [message]})
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > LABEL_MAX_LENGTH:
        message = f"label is text of at most {LABEL_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"label": [message]})
    return RunRequest(
        duration_s=duration,
        seed=seed if seed is not None else secrets.randbelow(2**31),
        speed=speed,
        max_requests=asked or cap,
        label=label.strip(),
    )


def _invalid_design(problems: list[dict[str, Any]]) -> InvalidInput:
    errors = [p for p in problems if p["severity"] == "error"]
    lines = [f"{p['element_id']}: {p['message']}" if p["element_id"] else p["message"] for p in errors]
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    plural = "s" if len(errors) != 1 else ""
    return InvalidInput(
        f"The design cannot run: {len(errors)} problem{plural}: {shown}. "
        "GET /boards/{id}/design/ lists them by element.",
        fields={"design": lines},
    )


def run_start(*, user: User, board_id: object, data: dict[str, Any]) -> SimulationRun:
    """Start a simulation of the board's current design: `data` holds duration_s (default 60),
    seed?, speed? (default 1; null: as fast as possible), max_requests?, faults?, label?."""
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", fields={"non_field_errors": ["Expected a JSON object."]})
    found = board_access(user=user, board_id=board_id)
    board = found.board
    refusal = access.simulation_start_refusal(kind=board.room.kind, role=found.role, user_active=found.user_active)
    if refusal is not None:
        raise refusal
    extracted = designs.board_design(board)
    if not extracted.valid:
        raise _invalid_design(extracted.problems)
    request = _run_request(data, extracted.design)
    faults = _faults(data.get("faults"), extracted.design)
    with transaction.atomic():
        # The user's row lock serialises their starts: the count below cannot be raced past.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        if selectors.active_run_count(user_id=user.pk) >= settings.SIM_MAX_CONCURRENT_RUNS:
            raise QuotaExceeded(
                f"You already have {settings.SIM_MAX_CONCURRENT_RUNS} simulations queued or running "
                "(SIM_MAX_CONCURRENT_RUNS): wait for one to finish or cancel it."
            )
        limits.require_simulation_slot(workspace_id=board.room.workspace_id)  # the workspace's, after the user's
        run = SimulationRun.objects.create(
            board=board,
            started_by=user,
            seed=request.seed,
            duration_s=request.duration_s,
            parameters={"speed": request.speed, "max_requests": request.max_requests, "label": request.label},
            design=extracted.design,
            board_sequence=extracted.sequence,
            faults=[f.to_json() for f in faults],
        )
        _announce(run, _run_frame(run, "simulation.started", simulation=run_payload(run)))
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: object) -> None:
    from simulator.tasks import run_simulation

    try:
        run_simulation.apply_async(args=[str(run_id)], queue=settings.SIM_CELERY_QUEUE)
    except Exception:  # the broker is away: the run fails now rather than wait forever
        logger.exception("could not enqueue simulation %s", run_id)
        run_fail(run_id, "The run could not be queued (the task broker is unreachable); start it again.")


# -- cancelling and live faults -------------------------------------------------------------------


def run_cancel(*, user: User, run_id: object) -> SimulationRun:
    """Cancel a run: a queued one at once, a running one at its worker's next report (within a
    fraction of a second; it keeps the figures so far). A finished run is returned as it is."""
    found = selectors.run_access(user=user, run_id=run_id)
    run = found.run
    refusal = access.simulation_cancel_refusal(
        kind=run.board.room.kind,
        role=found.role,
        user_active=found.user_active,
        is_starter=run.started_by_id is not None and run.started_by_id == user.pk,
    )
    if refusal is not None:
        raise refusal
    now = timezone.now()
    with transaction.atomic():
        locked = SimulationRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == Status.QUEUED:
            locked.status, locked.finished_at = Status.CANCELLED, now
            locked.cancel_requested_at, locked.cancelled_by = now, user
            locked.save(update_fields=["status", "finished_at", "cancel_requested_at", "cancelled_by"])
            _finished_event(locked)
        elif locked.status == Status.RUNNING and locked.cancel_requested_at is None:
            locked.cancel_requested_at, locked.cancelled_by = now, user
            locked.save(update_fields=["cancel_requested_at", "cancelled_by"])
    run.refresh_from_db()
    return run


def run_inject(*, user: User, run_id: object, fault: object) -> SimulationCommand:
    """Inject a fault into a queued or running run (`at_s` omitted: now). The worker applies it at
    its next report and announces it as `simulation.fault`."""
    found = selectors.run_access(user=user, run_id=run_id)
    run = found.run
    refusal = access.simulation_start_refusal(kind=run.board.room.kind, role=found.role, user_active=found.user_active)
    if refusal is not None:
        raise refusal
    if run.finished or run.cancel_requested_at is not None:
        raise Conflict("This run is over: faults go into live runs.", code="finished")
    parsed = fault_parse(fault, run.design)
    data = parsed.to_json()
    if not isinstance(fault, dict) or "at_s" not in fault:
        data["at_s"] = None  # now, whatever the simulated time is when the worker takes it
    if len(run.faults) + SimulationCommand.objects.filter(run=run).count() >= MAX_FAULTS:
        raise InvalidInput(f"At most {MAX_FAULTS} faults per run.", fields={"fault": [f"At most {MAX_FAULTS}."]})
    return SimulationCommand.objects.create(run=run, fault=data, created_by=user)


# -- the worker's side (simulator.tasks) ------------------------------------------------------------


def run_claim(run_id: object) -> SimulationRun | None:
    """The worker takes a queued run (None if it is not queued any more: cancelled, or taken)."""
    now = timezone.now()
    with transaction.atomic():
        run = (
            SimulationRun.objects.select_for_update(of=("self",))
            .select_related("board", "started_by", "cancelled_by")
            .filter(pk=selectors.parse_run_id(run_id), status=Status.QUEUED)
            .first()
        )
        if run is None:
            return None
        run.status, run.started_at, run.heartbeat_at = Status.RUNNING, now, now
        run.save(update_fields=["status", "started_at", "heartbeat_at"])
        _announce(run, _run_frame(run, "simulation.progress", status=run.status, progress=None))
    return run


@dataclass
class Control:
    cancel: bool
    commands: list[SimulationCommand]


def run_report(run: SimulationRun, progress: dict[str, Any]) -> Control:
    """Store and stream the latest figures; what the worker must do next (cancel, faults)."""
    now = timezone.now()
    with transaction.atomic():
        SimulationRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(progress=progress, heartbeat_at=now)
        _announce(run, _run_frame(run, "simulation.progress", status=Status.RUNNING, progress=progress))
    run.progress = progress
    return Control(cancel=selectors.cancel_requested(run_id=run.pk), commands=selectors.pending_commands(run_id=run.pk))


def command_applied(
    run: SimulationRun, command: SimulationCommand, *, fault: Fault | None, at_s: float, why: str
) -> None:
    """Record that the worker took a command (`fault` as applied, or `why` it was refused)."""
    with transaction.atomic():
        command.applied_at, command.applied_at_s, command.rejected = timezone.now(), at_s, why
        command.save(update_fields=["applied_at", "applied_at_s", "rejected"])
        if fault is not None:
            applied = {**fault.to_json(), "at_s": max(fault.at_s, at_s), "injected_by": command.created_by_id}
            run.faults = [*run.faults, applied]
            SimulationRun.objects.filter(pk=run.pk).update(faults=run.faults)
            by = {"id": command.created_by.pk, "username": command.created_by.username} if command.created_by else None
            _announce(run, _run_frame(run, "simulation.fault", fault=applied, user=by))


def _finished_event(run: SimulationRun) -> None:
    _announce(
        run,
        _run_frame(
            run,
            "simulation.finished",
            status=run.status,
            error=run.error,
            summary=run.summary,
            simulation=run_payload(run),
        ),
    )


def run_finish(run: SimulationRun, results: dict[str, Any], *, cancelled: bool, error: str = "") -> SimulationRun:
    """Store the results; the run is done, cancelled (stopped on request) or failed (`error`)."""
    with transaction.atomic():
        locked = SimulationRun.objects.select_for_update(of=("self",)).select_related(
            "board", "started_by", "cancelled_by"
        )
        current = locked.filter(pk=run.pk).first()
        if current is None:  # the board (and its runs) was deleted meanwhile
            return run
        if current.finished:
            return current
        current.results, current.summary = results, run_summary(results)
        current.status = Status.FAILED if error else Status.CANCELLED if cancelled else Status.DONE
        current.error = error
        current.finished_at = timezone.now()
        current.save(update_fields=["results", "summary", "status", "error", "finished_at"])
        _finished_event(current)
    return current


def run_fail(run_id: object, error: str) -> None:
    with transaction.atomic():
        run = (
            SimulationRun.objects.select_for_update(of=("self",))
            .select_related("board", "started_by", "cancelled_by")
            .filter(pk=selectors.parse_run_id(run_id))
            .first()
        )
        if run is None or run.finished:
            return
        run.status, run.error, run.finished_at = Status.FAILED, error[:2000], timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        _finished_event(run)


def runs_reap() -> int:
    """Fail the runs whose worker died (running, silent for SIM_STALE_AFTER_S) and those no worker
    took (queued longer than SIM_MAX_WALL_S + SIM_STALE_AFTER_S). Returns how many."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.SIM_STALE_AFTER_S)
    forgotten = now - datetime.timedelta(seconds=settings.SIM_MAX_WALL_S + settings.SIM_STALE_AFTER_S)
    ids = list(SimulationRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True))
    queued = list(
        SimulationRun.objects.filter(status=Status.QUEUED, created_at__lt=forgotten).values_list("pk", flat=True)
    )
    for run_id in ids:
        run_fail(run_id, "The worker running this simulation stopped reporting (it was restarted or died).")
    for run_id in queued:
        run_fail(run_id, "No worker took this simulation in time.")
    return len(ids) + len(queued)
