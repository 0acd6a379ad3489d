from typing import Annotated, TypedDict

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
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
        content = serializers.JSONField(
            help_text="The text; in an end-to-end encrypted room, an envelope object instead (docs/e2ee.md)"
        )
        client_msg_id = serializers.UUIDField()
        reply_to = serializers.UUIDField(
            required=False, help_text="Reply in this message's thread (docs/protocol.md, Threads and reactions)"
        )
        attachments = serializers.ListField(
            child=serializers.UUIDField(),
            required=False,
            max_length=10,
            help_text="Ids of my completed uploads to this room to send with it (docs/attachments.md); "
            "`content` may then be empty",
        )

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
            user=request.user,
            room_id=room_id,
            content=data.get("content"),
            client_msg_id=data.get("client_msg_id"),
            reply_to=data.get("reply_to"),
            attachments=data.get("attachments"),
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


class ThreadPage(TypedDict):
    root: MessagePayload
    results: Annotated[list[MessagePayload], "Replies; the order is the room history's (see the parameters)"]
    has_more: bool


@extend_schema(parameters=[ROOM_ID, MESSAGE_ID])
class ThreadApi(APIView):
    """A thread: its root message and a page of its replies. `message_id` may name the root or
    any reply. Paged like the room's history: `after_sequence` oldest first, `before_sequence`
    newest first, neither the newest replies, newest first."""

    @extend_schema(parameters=[HistoryParams], responses=documented(ThreadPage, 400, 403, 404))
    def get(self, request, room_id, message_id):
        params = validated(HistoryParams, request.query_params)
        root, replies, has_more = selectors.thread_page(
            user=request.user, room_id=room_id, message_id=message_id, **params
        )
        return Response(
            ThreadPage(root=message_payload(root), results=[message_payload(m) for m in replies], has_more=has_more)
        )


EMOJI = OpenApiParameter("emoji", str, OpenApiParameter.QUERY, required=True, description="The reaction to remove")


@extend_schema(parameters=[ROOM_ID, MESSAGE_ID])
class ReactionApi(APIView):
    """POST: add my reaction (adding one I have changes nothing). DELETE `?emoji=`: remove it
    (removing one I have not changes nothing). Either answers the message as it now is; a change
    is a numbered `message.update` of the room. Viewers react too."""

    write_scope = "edit"  # core.throttles

    class Input(serializers.Serializer):
        emoji = serializers.CharField(help_text="One emoji (a grapheme); anything else is `invalid_emoji`")

        class Meta:
            ref_name = "ReactionInput"

    @extend_schema(request=Input, responses=documented(MessagePayload, 400, 403, 404, 409, 429))
    def post(self, request, room_id, message_id):
        message = services.reaction_set(
            user=request.user,
            room_id=room_id,
            message_id=message_id,
            emoji=json_object(request).get("emoji"),
            present=True,
        )
        return Response(message_payload(message))

    @extend_schema(parameters=[EMOJI], responses=documented(MessagePayload, 400, 403, 404, 409, 429))
    def delete(self, request, room_id, message_id):
        message = services.reaction_set(
            user=request.user,
            room_id=room_id,
            message_id=message_id,
            emoji=request.query_params.get("emoji"),
            present=False,
        )
        return Response(message_payload(message))
