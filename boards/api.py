"""REST for boards (docs/protocol.md "Boards"): list/create per room, read as JSON, rename,
delete, the update log (read after a number, write one update), and awareness for clients
without a socket. History, state, export and comments live in their own modules (routes in
boards/urls.py)."""

from typing import Annotated, TypedDict

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
from core.errors import InvalidInput
from core.events import dumps
from core.throttles import _FailOpen
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

    # Its own budget, as on the socket (RATE_LIMIT_SOCKET_BOARD): a drawing client over SSE or
    # long-polling sends several updates a second, which must not eat the user's message sends.
    write_scope = "board"

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


class AwarenessThrottle(_FailOpen):
    """20 a second per client (user and session key), as the socket's `awareness` bucket
    (RATE_LIMIT_SOCKET_AWARENESS); over it, 429 `rate_limited` (nothing is announced)."""

    scope = "awareness"

    def get_cache_key(self, request, view) -> str:
        data = request.data if isinstance(request.data, dict) else {}
        key = data.get("session")
        ident = f"{request.user.pk}:{key if isinstance(key, str) else ''}"[:100]
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AwarenessUserThrottle(_FailOpen):
    """And per user, whatever session keys they make up (3 pages' worth by default)."""

    scope = "awareness_user"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class BoardAwarenessAnswer(TypedDict):
    session: Annotated[str, "The awareness session the others see: rest-<user id>-<key>"]


@extend_schema(parameters=[BOARD_ID])
class BoardAwarenessApi(APIView):
    """POST: where one is on the board (cursor, selection, viewport, name, colour), for clients on
    Server-Sent Events or long-polling (the socket has `board.awareness`). Ephemeral: announced to
    the board's sockets and streams as `board.awareness`, never stored."""

    throttle_classes = [AwarenessThrottle, AwarenessUserThrottle]

    class Input(serializers.Serializer):
        session = serializers.CharField(
            max_length=64,
            help_text="A key of the client's own (one per page): its awareness session is rest-<user id>-<key>",
        )
        state = serializers.JSONField(
            allow_null=True, help_text="{cursor, selection, viewport, name, colour}, at most 4 KB; null: gone"
        )

        class Meta:
            ref_name = "BoardAwarenessInput"

    @extend_schema(
        operation_id="board_awareness_create",
        request=Input,
        responses=documented(BoardAwarenessAnswer, 400, 403, 404, 429),
    )
    def post(self, request, board_id):
        data = json_object(request)
        if "state" not in data:  # null says "gone": absent is a mistake
            raise InvalidInput('"state" is required.', fields={"state": ["This field is required."]})
        session = services.board_awareness_publish(
            user=request.user, board_id=board_id, session_key=data.get("session"), state=data.get("state")
        )
        return Response(BoardAwarenessAnswer(session=session))
