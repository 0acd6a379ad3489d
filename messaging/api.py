from typing import TypedDict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import json_object
from messaging import selectors, services
from messaging.params import ChangesParams, HistoryParams, validated
from messaging.payloads import (
    ChangeFrame,
    MessagePayload,
    MessageReceipts,
    RevisionPayload,
    change_frame,
    message_payload,
    revision_payload,
)
from rooms.api import MESSAGE_ID, ROOM_ID, documented


class MessagePage(TypedDict):
    results: list[MessagePayload]
    has_more: bool


class ChangePage(TypedDict):
    results: list[ChangeFrame]
    has_more: bool
    last_sequence: int


class RevisionList(TypedDict):
    results: list[RevisionPayload]


class ReceiptMarks(TypedDict):
    delivered_sequence: int
    read_sequence: int


@extend_schema(parameters=[ROOM_ID])
class MessageListApi(APIView):
    """GET: a page of history (`after_sequence` oldest first, else newest first). POST: send."""

    write_scope = "send"  # core.throttles

    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)
        client_msg_id = serializers.UUIDField()

        class Meta:
            ref_name = "MessageListInput"

    @extend_schema(parameters=[HistoryParams], responses=documented(MessagePage, 400, 403, 404))
    def get(self, request, room_id):
        params = validated(HistoryParams, request.query_params)
        messages, has_more = selectors.messages_page(user=request.user, room_id=room_id, **params)
        return Response(MessagePage(results=[message_payload(m) for m in messages], has_more=has_more))

    @extend_schema(
        request=Input,
        responses=documented(
            {
                201: OpenApiResponse(MessagePayload, "Sent"),
                200: OpenApiResponse(MessagePayload, "This `client_msg_id` was sent before: the original message"),
            },
            400,
            403,
            404,
            409,
            429,
        ),
    )
    def post(self, request, room_id):
        data = json_object(request)
        message, created = services.message_send(
            user=request.user, room_id=room_id, content=data.get("content"), client_msg_id=data.get("client_msg_id")
        )
        return Response(message_payload(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(parameters=[ROOM_ID])
class ChangeListApi(APIView):
    """Sync: everything that changed in the room after `after_sequence` (new messages, edits with
    their latest text, deletions as tombstones), in number order, each message once. Resume from
    `last_sequence`; repeat while `has_more`."""

    @extend_schema(parameters=[ChangesParams], responses=documented(ChangePage, 400, 403, 404))
    def get(self, request, room_id):
        params = validated(ChangesParams, request.query_params)
        messages, has_more, last = selectors.changes_page(user=request.user, room_id=room_id, **params)
        return Response(ChangePage(results=[change_frame(m) for m in messages], has_more=has_more, last_sequence=last))


@extend_schema(parameters=[ROOM_ID, MESSAGE_ID])
class MessageDetailApi(APIView):
    write_scope = "edit"

    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)

        class Meta:
            ref_name = "MessageEditInput"

    @extend_schema(request=Input, responses=documented(MessagePayload, 400, 403, 404, 409, 429))
    def patch(self, request, room_id, message_id):
        message = services.message_edit(
            user=request.user, room_id=room_id, message_id=message_id, content=json_object(request).get("content")
        )
        return Response(message_payload(message))

    @extend_schema(responses=documented(MessagePayload, 403, 404, 409, 429))
    def delete(self, request, room_id, message_id):
        message = services.message_delete(user=request.user, room_id=room_id, message_id=message_id)
        return Response(message_payload(message))


@extend_schema(parameters=[ROOM_ID, MESSAGE_ID])
class MessageRevisionListApi(APIView):
    @extend_schema(responses=documented(RevisionList, 403, 404, 409))
    def get(self, request, room_id, message_id):
        revisions = selectors.message_revisions(user=request.user, room_id=room_id, message_id=message_id)
        return Response(RevisionList(results=[revision_payload(r) for r in revisions]))


@extend_schema(parameters=[ROOM_ID, MESSAGE_ID])
class MessageReceiptsApi(APIView):
    @extend_schema(responses=documented(MessageReceipts, 403, 404, 409))
    def get(self, request, room_id, message_id):
        return Response(selectors.message_receipts(user=request.user, room_id=room_id, message_id=message_id))


@extend_schema(parameters=[ROOM_ID])
class ReceiptApi(APIView):
    """Move my delivered/read marks forward (they never move back)."""

    write_scope = "receipt"

    class Input(serializers.Serializer):
        delivered_sequence = serializers.IntegerField(min_value=0, required=False)
        read_sequence = serializers.IntegerField(min_value=0, required=False)

        class Meta:
            ref_name = "ReceiptInput"

    @extend_schema(request=Input, responses=documented(ReceiptMarks, 400, 403, 404, 429))
    def post(self, request, room_id):
        data = json_object(request)
        membership = services.receipt_update(
            user=request.user,
            room_id=room_id,
            delivered_sequence=data.get("delivered_sequence"),
            read_sequence=data.get("read_sequence"),
        )
        return Response(
            ReceiptMarks(delivered_sequence=membership.delivered_sequence, read_sequence=membership.read_sequence)
        )
