"""REST for boards (docs/protocol.md "Boards"): list/create per room, read as JSON, rename,
delete, and the update log (read after a number, write one update). History, state, export and
comments live in their own modules (routes in boards/urls.py)."""

from typing import TypedDict

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from boards import selectors, services
from boards.payloads import (
    BoardDocumentPayload,
    BoardPayload,
    UpdateAckPayload,
    UpdatePage,
    board_payload,
    update_ack,
    update_payload,
)
from core.api import json_object
from core.events import dumps
from messaging.params import ChangesParams, validated
from rooms.api import ROOM_ID, documented

BOARD_ID = OpenApiParameter("board_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class BoardList(TypedDict):
    results: list[BoardPayload]


class _TitleInput(serializers.Serializer):
    title = serializers.CharField(max_length=120)

    class Meta:
        ref_name = "BoardTitleInput"


@extend_schema(parameters=[ROOM_ID])
class RoomBoardListApi(APIView):
    """GET: the room's boards, newest first. POST: create one (owners, admins, members)."""

    write_scope = "edit"

    @extend_schema(operation_id="room_boards_list", responses=documented(BoardList, 403, 404))
    def get(self, request, room_id):
        boards = selectors.board_list(user=request.user, room_id=room_id)[:500]
        return Response(BoardList(results=[board_payload(b) for b in boards]))

    @extend_schema(
        operation_id="room_boards_create",
        request=_TitleInput,
        responses=documented({201: BoardPayload}, 400, 403, 404, 429),
    )
    def post(self, request, room_id):
        board = services.board_create(user=request.user, room_id=room_id, title=json_object(request).get("title"))
        return Response(board_payload(board), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[BOARD_ID])
class BoardDetailApi(APIView):
    """GET: the board and its document as JSON. PATCH: rename. DELETE: delete with its log,
    snapshots and comments (the board's creator, or the room's owners and admins)."""

    write_scope = "edit"

    @extend_schema(operation_id="boards_retrieve", responses=documented(BoardDocumentPayload, 403, 404))
    def get(self, request, board_id):
        board, _ = selectors.board_get_for(user=request.user, board_id=board_id)
        # The elements' JSON text as rendered (cached per number), spliced in: a big board's
        # elements are not parsed and encoded again for every reader.
        sequence, elements = selectors.board_rendering(board=board)
        head = dumps({"board": board_payload(board), "sequence": sequence})
        return HttpResponse(head[:-1] + ',"elements":' + elements + "}", content_type="application/json")

    @extend_schema(
        operation_id="boards_rename", request=_TitleInput, responses=documented(BoardPayload, 400, 403, 404, 429)
    )
    def patch(self, request, board_id):
        board = services.board_rename(user=request.user, board_id=board_id, title=json_object(request).get("title"))
        return Response(board_payload(board))

    @extend_schema(operation_id="boards_delete", responses=documented({204: None}, 403, 404, 429))
    def delete(self, request, board_id):
        services.board_delete(user=request.user, board_id=board_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[BOARD_ID])
class BoardUpdateListApi(APIView):
    """GET: the log after `after_sequence` (409 `compacted` if that part went into a snapshot:
    fetch the whole state instead). POST: one Yjs update, idempotent on `client_update_id`."""

    write_scope = "send"

    class Input(serializers.Serializer):
        # Shadows Serializer.update(), which this schema-only serializer never calls.
        update = serializers.CharField(  # type: ignore[assignment]
            help_text="Base64 of a Yjs v1 update (at most 256 KB decoded)"
        )
        client_update_id = serializers.UUIDField()

        class Meta:
            ref_name = "BoardUpdateInput"

    @extend_schema(
        operation_id="board_updates_list",
        parameters=[ChangesParams],
        responses=documented(UpdatePage, 400, 403, 404, 409),
    )
    def get(self, request, board_id):
        params = validated(ChangesParams, request.query_params)
        _board, updates, has_more, last = selectors.board_updates_page(
            user=request.user, board_id=board_id, after_sequence=params["after_sequence"], limit=params["limit"]
        )
        return Response(UpdatePage(updates=[update_payload(u) for u in updates], has_more=has_more, last_sequence=last))

    @extend_schema(
        operation_id="board_updates_create",
        request=Input,
        responses=documented(
            {
                201: OpenApiResponse(UpdateAckPayload, "Applied and stored"),
                200: OpenApiResponse(UpdateAckPayload, "This `client_update_id` was stored before: its ack"),
            },
            400,
            403,
            404,
            429,
        ),
    )
    def post(self, request, board_id):
        data = json_object(request)
        stored, created = services.board_update_apply(
            user=request.user,
            board_id=board_id,
            update=data.get("update"),
            client_update_id=data.get("client_update_id"),
        )
        return Response(update_ack(stored), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
