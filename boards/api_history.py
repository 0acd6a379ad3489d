"""REST for replay, export and comments of a board (boards.history, boards.comments); routes in
boards/urls.py."""

import re
from typing import TypedDict

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from boards import comments, history
from boards.api import BOARD_ID
from boards.comments import CommentPayload, comment_payload
from boards.history import ExportPayload, HistoryPage, StatePayload
from core.api import json_object
from messaging.params import validated
from rooms.api import documented

COMMENT_ID = OpenApiParameter("comment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class HistoryParams(serializers.Serializer):
    after_sequence = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=history.HISTORY_PAGE_MAX, default=100)

    class Meta:
        ref_name = "BoardHistoryParams"


class StateParams(serializers.Serializer):
    at = serializers.IntegerField(min_value=0, required=False, help_text="A number of the board's log (default: now)")

    class Meta:
        ref_name = "BoardStateParams"


@extend_schema(parameters=[BOARD_ID])
class BoardHistoryApi(APIView):
    """The timeline for replay: each update after `after_sequence` with who sent it, when, and
    which elements it touched. Page on with the last entry's `sequence` while `has_more`."""

    @extend_schema(
        operation_id="board_history", parameters=[HistoryParams], responses=documented(HistoryPage, 400, 403, 404)
    )
    def get(self, request, board_id):
        params = validated(HistoryParams, request.query_params)
        return Response(history.history_page(user=request.user, board_id=board_id, **params))


@extend_schema(parameters=[BOARD_ID])
class BoardStateApi(APIView):
    """The whole document at number `at` (or now): one base64 Yjs v1 update to load into an empty
    Y.Doc. Every number above the log's start is exact; below it, the checkpoint before `at`."""

    @extend_schema(
        operation_id="board_state", parameters=[StateParams], responses=documented(StatePayload, 400, 403, 404)
    )
    def get(self, request, board_id):
        params = validated(StateParams, request.query_params)
        return Response(history.state_at(user=request.user, board_id=board_id, at=params.get("at")))


@extend_schema(parameters=[BOARD_ID])
class BoardExportApi(APIView):
    """The board as a JSON file (elements with every property, ordered by (z, id))."""

    @extend_schema(operation_id="board_export", responses=documented(ExportPayload, 403, 404))
    def get(self, request, board_id):
        board, body = history.export(user=request.user, board_id=board_id)
        name = re.sub(r"[^A-Za-z0-9._ -]+", "_", board.title).strip() or "board"
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response


class CommentList(TypedDict):
    results: list[CommentPayload]


@extend_schema(parameters=[BOARD_ID])
class BoardCommentListApi(APIView):
    """GET: every comment of the board, oldest first (deleted ones as tombstones). POST: start a
    thread anchored on an element (`element_id`) or a point (`x`, `y`), or reply (`parent`)."""

    write_scope = "send"

    class Input(serializers.Serializer):
        body = serializers.CharField(max_length=4000)
        element_id = serializers.CharField(required=False, allow_null=True, max_length=200)
        x = serializers.FloatField(required=False, allow_null=True)
        y = serializers.FloatField(required=False, allow_null=True)
        parent = serializers.UUIDField(required=False, allow_null=True, help_text="Reply to this thread")  # type: ignore[assignment]

        class Meta:
            ref_name = "BoardCommentInput"

    @extend_schema(operation_id="board_comments_list", responses=documented(CommentList, 403, 404))
    def get(self, request, board_id):
        found = comments.comment_list(user=request.user, board_id=board_id)
        return Response(CommentList(results=[comment_payload(c) for c in found]))

    @extend_schema(
        operation_id="board_comments_create",
        request=Input,
        responses=documented({201: CommentPayload}, 400, 403, 404, 409, 429),
    )
    def post(self, request, board_id):
        data = json_object(request)
        comment = comments.comment_create(
            user=request.user,
            board_id=board_id,
            body=data.get("body"),
            element_id=data.get("element_id"),
            x=data.get("x"),
            y=data.get("y"),
            parent_id=data.get("parent"),
        )
        return Response(comment_payload(comment), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[BOARD_ID, COMMENT_ID])
class BoardCommentDetailApi(APIView):
    """PATCH: edit the text (the author) and/or resolve or reopen a thread (anyone who may
    comment). DELETE: the author or a room owner/admin; a tombstone stays."""

    write_scope = "edit"

    class Input(serializers.Serializer):
        body = serializers.CharField(max_length=4000, required=False)
        resolved = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "BoardCommentEditInput"

    @extend_schema(
        operation_id="board_comments_update",
        request=Input,
        responses=documented(CommentPayload, 400, 403, 404, 409, 429),
    )
    def patch(self, request, board_id, comment_id):
        data = json_object(request)
        changes = {key: data[key] for key in ("body", "resolved") if key in data}
        comment = comments.comment_update(user=request.user, board_id=board_id, comment_id=comment_id, **changes)
        return Response(comment_payload(comment))

    @extend_schema(operation_id="board_comments_delete", responses=documented(CommentPayload, 403, 404, 429))
    def delete(self, request, board_id, comment_id):
        comment = comments.comment_delete(user=request.user, board_id=board_id, comment_id=comment_id)
        return Response(comment_payload(comment))
