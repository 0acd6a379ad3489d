"""Reads of simulation runs, with the board's access rules: whoever may open a board watches its
runs (rooms.access.board_see_refusal); runs of boards one may not see are `not_found`."""

import uuid
from dataclasses import dataclass

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import User
from boards.selectors import BoardAccess, board_access
from core.errors import NotFound
from rooms import access
from rooms.models import Membership
from simulator.models import SimulationCommand, SimulationRun
from workspaces.selectors import workspace_role_of

LIST_LIMIT = 100


def parse_run_id(run_id: object) -> uuid.UUID:
    try:
        return run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound() from None


@dataclass(frozen=True)
class RunAccess:
    run: SimulationRun
    role: str | None
    user_active: bool


def run_access(*, user: User, run_id: object) -> RunAccess:
    """The run, if the user may open its board (one query)."""
    run = (
        SimulationRun.objects.select_related("board__room", "started_by", "cancelled_by")
        .annotate(
            reader_role=Subquery(
                Membership.objects.filter(room_id=OuterRef("board__room_id"), user_id=user.pk).values("role")[:1]
            ),
            reader_active=Subquery(User.objects.filter(pk=user.pk).values("is_active")[:1]),
            reader_workspace_role=workspace_role_of(user.pk, OuterRef("board__room__workspace_id")),
        )
        .filter(pk=parse_run_id(run_id))
        .first()
    )
    if run is None:
        raise NotFound()
    role, active = run.reader_role, bool(run.reader_active)
    kind = access.scoped_kind(kind=run.board.room.kind, role=role, workspace_role=run.reader_workspace_role)
    refusal = access.board_see_refusal(kind=kind, role=role, user_active=active)
    if refusal is not None:
        raise refusal
    return RunAccess(run=run, role=role, user_active=active)


def run_get_for(*, user: User, run_id: object) -> SimulationRun:
    return run_access(user=user, run_id=run_id).run


def runs_of_board(
    *, user: User, board_id: object, active_only: bool = False
) -> tuple[BoardAccess, list[SimulationRun]]:
    """The board's runs, newest first (at most LIST_LIMIT), for whoever may open the board."""
    found = board_access(user=user, board_id=board_id)
    runs: QuerySet[SimulationRun] = (
        SimulationRun.objects.filter(board=found.board)
        .select_related("board", "started_by", "cancelled_by")
        .defer("results", "design")  # the list shows summaries; GET /simulations/{id}/ has the rest
    )
    if active_only:
        runs = runs.filter(status__in=SimulationRun.ACTIVE)
    return found, list(runs.order_by("-created_at", "id")[:LIST_LIMIT])


def active_run_count(*, user_id: int) -> int:
    return SimulationRun.objects.filter(started_by_id=user_id, status__in=SimulationRun.ACTIVE).count()


def pending_commands(*, run_id: uuid.UUID) -> list[SimulationCommand]:
    return list(SimulationCommand.objects.filter(run_id=run_id, applied_at__isnull=True).order_by("pk"))


def cancel_requested(*, run_id: uuid.UUID) -> bool:
    """Whether someone asked to cancel the run (or it is gone)."""
    row = SimulationRun.objects.filter(pk=run_id).values_list("cancel_requested_at", "status").first()
    return row is None or row[0] is not None or row[1] not in SimulationRun.ACTIVE
