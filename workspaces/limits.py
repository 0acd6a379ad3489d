"""Per-workspace limits (seed 004's user_limits): rooms, boards, attachment storage, concurrent
simulations. The services that create those things call these inside their transaction; each
locks the workspace's row first, so two creations racing for the last slot queue up and the
second is refused (the count is read after the lock). Refusals are 409 `limit_reached`."""

from django.db.models import Q, Sum

from core.errors import ApplicationError
from workspaces.models import Workspace


class LimitReached(ApplicationError):
    code = "limit_reached"
    status = 409
    message = "This workspace has reached one of its limits."


def _locked(workspace_id: int) -> Workspace:
    # Serialises creations in one workspace (rare writes: rooms, boards, uploads, runs).
    return Workspace.objects.select_for_update().get(pk=workspace_id)


def require_room_slot(*, workspace_id: int) -> None:
    """Direct conversations do not count: people can always talk to each other."""
    from rooms.models import Room

    workspace = _locked(workspace_id)
    used = Room.objects.filter(workspace_id=workspace_id).exclude(kind=Room.Kind.DIRECT).count()
    if used >= workspace.max_rooms:
        raise LimitReached(
            f"{workspace.name} has reached its limit of {workspace.max_rooms} rooms: "
            "delete one or ask an admin to raise it."
        )


def require_board_slot(*, workspace_id: int) -> None:
    from boards.models import Board

    workspace = _locked(workspace_id)
    if Board.objects.filter(room__workspace_id=workspace_id).count() >= workspace.max_boards:
        raise LimitReached(
            f"{workspace.name} has reached its limit of {workspace.max_boards} boards: "
            "delete one or ask an admin to raise it."
        )


def require_storage(*, workspace_id: int, adding: int) -> None:
    """Room for `adding` more bytes of attachments: stored files count by their size, uploads
    not yet completed by their declared size (failed ones not at all)."""
    from attachments.models import Attachment

    workspace = _locked(workspace_id)
    rows = Attachment.objects.filter(room__workspace_id=workspace_id).exclude(
        status__in=[Attachment.Status.FAILED, Attachment.Status.DELETED]
    )
    used = rows.aggregate(
        stored=Sum("size", filter=Q(size__isnull=False)), pending=Sum("declared_size", filter=Q(size__isnull=True))
    )
    total = (used["stored"] or 0) + (used["pending"] or 0)
    if total + adding > workspace.max_storage_bytes:
        raise LimitReached(
            f"{workspace.name} has used its {workspace.max_storage_bytes // 2**20} MiB of file storage: "
            "delete files or ask an admin to raise the limit."
        )


def require_simulation_slot(*, workspace_id: int) -> None:
    from simulator.models import SimulationRun

    workspace = _locked(workspace_id)
    live = SimulationRun.objects.filter(
        board__room__workspace_id=workspace_id,
        status__in=SimulationRun.ACTIVE,
    ).count()
    if live >= workspace.max_concurrent_simulations:
        raise LimitReached(
            f"{workspace.name} already has {live} simulations queued or running (its limit): "
            "wait for one to finish or cancel one."
        )
