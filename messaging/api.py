from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import json_object
from messaging import selectors, services
from messaging.params import ChangesParams, HistoryParams, validated
from messaging.payloads import change_frame, message_payload
from rooms.api import UserOutput


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    room = serializers.UUIDField()
    sequence = serializers.IntegerField()
    sender = UserOutput(allow_null=True)
    content = serializers.CharField()
    client_msg_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField()


class MessageListApi(APIView):
    """GET: a page of history (`after_sequence` oldest first, else newest first). POST: send."""

    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)
        client_msg_id = serializers.UUIDField()

        class Meta:
            ref_name = "MessageListInput"

    @extend_schema(
        parameters=[HistoryParams],
        responses=inline_serializer(
            "MessagePage", {"results": MessageOutput(many=True), "has_more": serializers.BooleanField()}
        ),
    )
    def get(self, request, room_id):
        params = validated(HistoryParams, request.query_params)
        messages, has_more = selectors.messages_page(user=request.user, room_id=room_id, **params)
        return Response({"results": [message_payload(m) for m in messages], "has_more": has_more})

    @extend_schema(request=Input, responses={201: MessageOutput, 200: MessageOutput})
    def post(self, request, room_id):
        data = json_object(request)
        message, created = services.message_send(
            user=request.user, room_id=room_id, content=data.get("content"), client_msg_id=data.get("client_msg_id")
        )
        return Response(message_payload(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ChangeOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["message.new", "message.edit", "message.delete"])
    room = serializers.UUIDField()
    sequence = serializers.IntegerField(help_text="The number of this change in the room's history")
    message = MessageOutput()


class ChangeListApi(APIView):
    """Sync: everything that changed in the room after `after_sequence` (new messages, edits with
    their latest text, deletions as tombstones), in number order, each message once. Resume from
    `last_sequence`; repeat while `has_more`."""

    @extend_schema(
        parameters=[ChangesParams],
        responses=inline_serializer(
            "ChangePage",
            {
                "results": ChangeOutput(many=True),
                "has_more": serializers.BooleanField(),
                "last_sequence": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request, room_id):
        params = validated(ChangesParams, request.query_params)
        messages, has_more, last = selectors.changes_page(user=request.user, room_id=room_id, **params)
        return Response({"results": [change_frame(m) for m in messages], "has_more": has_more, "last_sequence": last})


class MessageDetailApi(APIView):
    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)

        class Meta:
            ref_name = "MessageEditInput"

    @extend_schema(request=Input, responses=MessageOutput)
    def patch(self, request, room_id, message_id):
        message = services.message_edit(
            user=request.user, room_id=room_id, message_id=message_id, content=json_object(request).get("content")
        )
        return Response(message_payload(message))

    @extend_schema(responses=MessageOutput)
    def delete(self, request, room_id, message_id):
        message = services.message_delete(user=request.user, room_id=room_id, message_id=message_id)
        return Response(message_payload(message))


class MessageRevisionListApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "RevisionList",
            {
                "results": inline_serializer(
                    "Revision",
                    {
                        "content": serializers.CharField(),
                        "written_at": serializers.DateTimeField(),
                        "replaced_at": serializers.DateTimeField(),
                    },
                    many=True,
                )
            },
        )
    )
    def get(self, request, room_id, message_id):
        revisions = selectors.message_revisions(user=request.user, room_id=room_id, message_id=message_id)
        return Response(
            {
                "results": [
                    {
                        "content": r.content,
                        "written_at": r.written_at.isoformat(),
                        "replaced_at": r.replaced_at.isoformat(),
                    }
                    for r in revisions
                ]
            }
        )


class MessageReceiptsApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "MessageReceipts",
            {
                "message": serializers.UUIDField(),
                "sequence": serializers.IntegerField(),
                "delivered_to": UserOutput(many=True),
                "read_by": UserOutput(many=True),
            },
        )
    )
    def get(self, request, room_id, message_id):
        return Response(selectors.message_receipts(user=request.user, room_id=room_id, message_id=message_id))


class ReceiptApi(APIView):
    """Move my delivered/read marks forward (they never move back)."""

    class Input(serializers.Serializer):
        delivered_sequence = serializers.IntegerField(min_value=0, required=False)
        read_sequence = serializers.IntegerField(min_value=0, required=False)

        class Meta:
            ref_name = "ReceiptInput"

    @extend_schema(
        request=Input,
        responses=inline_serializer(
            "ReceiptMarks",
            {"delivered_sequence": serializers.IntegerField(), "read_sequence": serializers.IntegerField()},
        ),
    )
    def post(self, request, room_id):
        data = json_object(request)
        membership = services.receipt_update(
            user=request.user,
            room_id=room_id,
            delivered_sequence=data.get("delivered_sequence"),
            read_sequence=data.get("read_sequence"),
        )
        return Response(
            {"delivered_sequence": membership.delivered_sequence, "read_sequence": membership.read_sequence}
        )
