"""The JSON shapes of boards and their log, the same over REST and the socket (docs/protocol.md
"Boards"). TypedDicts document the OpenAPI schema (rooms.api.payload_serializer); the functions
are plain dict builders."""

from typing import Annotated, Any, TypedDict

from boards import crdt
from boards.models import Board, BoardUpdate
from rooms.payloads import DateTimeStr, UserPayload, UUIDStr, user_payload


class BoardPayload(TypedDict):
    id: UUIDStr
    room: UUIDStr
    title: str
    created_by: Annotated[UserPayload | None, "Null once the creator's account is gone"]
    created_at: DateTimeStr
    last_sequence: Annotated[int, "The number of the board's latest update"]


class ElementPayload(TypedDict):
    """One element: `id` plus every property the document holds (type, x, y, w, h, angle, stroke,
    fill, text, fontSize, points, from, to, z, createdBy, ...; unknown ones are passed through)."""

    id: str


class BoardDocumentPayload(TypedDict):
    """GET /boards/{id}/: the board and its document rendered as JSON at `sequence`."""

    board: BoardPayload
    sequence: Annotated[int, "The number of the latest update the rendering includes"]
    elements: Annotated[list[ElementPayload], "Ordered by (z, id)"]


class UpdateAckPayload(TypedDict):
    board: UUIDStr
    client_update_id: UUIDStr
    sequence: Annotated[int, "The update's number in the board's log"]


class UpdatePayload(TypedDict):
    sequence: int
    update: Annotated[str, "Base64 of the Yjs v1 update"]
    user: Annotated[UserPayload | None, "Null once the account is gone"]
    client_update_id: UUIDStr
    created_at: DateTimeStr


class UpdatePage(TypedDict):
    updates: list[UpdatePayload]
    has_more: bool
    last_sequence: Annotated[int, "The client has every update up to this number after applying these"]


def board_payload(board: Board) -> BoardPayload:
    return {
        "id": str(board.pk),
        "room": str(board.room_id),
        "title": board.title,
        "created_by": user_payload(board.created_by),
        "created_at": board.created_at.isoformat(),
        "last_sequence": board.last_sequence,
    }


def update_payload(update: BoardUpdate) -> UpdatePayload:
    return {
        "sequence": update.sequence,
        "update": crdt.b64encode(bytes(update.update)),
        "user": user_payload(update.user),
        "client_update_id": str(update.client_update_id),
        "created_at": update.created_at.isoformat(),
    }


def update_ack(update: BoardUpdate) -> UpdateAckPayload:
    return {
        "board": str(update.board_id),
        "client_update_id": str(update.client_update_id),
        "sequence": update.sequence,
    }


def update_frame(update: BoardUpdate) -> dict[str, Any]:
    """The live `board.update` frame (and an item of `board.updates`, without `type`)."""
    return {
        "type": "board.update",
        "board": str(update.board_id),
        "sequence": update.sequence,
        "update": crdt.b64encode(bytes(update.update)),
        "user": user_payload(update.user),
        "client_update_id": str(update.client_update_id),
    }


def sync_item(update: BoardUpdate) -> dict[str, Any]:
    return {
        "sequence": update.sequence,
        "update": crdt.b64encode(bytes(update.update)),
        "user": user_payload(update.user),
        "client_update_id": str(update.client_update_id),
    }
