from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
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

    class Query(serializers.Serializer):
        after_sequence = serializers.IntegerField(min_value=0, required=False)
        before_sequence = serializers.IntegerField(min_value=1, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=50)

        def validate(self, attrs):
            if "after_sequence" in attrs and "before_sequence" in attrs:
                raise serializers.ValidationError("Use after_sequence or before_sequence, not both.")
            return attrs

    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)
        client_msg_id = serializers.UUIDField()

        class Meta:
            ref_name = "MessageListInput"

    @extend_schema(
        parameters=[Query],
        responses=inline_serializer(
            "MessagePage", {"results": MessageOutput(many=True), "has_more": serializers.BooleanField()}
        ),
    )
    def get(self, request, room_id):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages, has_more = selectors.messages_page(user=request.user, room_id=room_id, **query.validated_data)
        return Response({"results": [message_payload(m) for m in messages], "has_more": has_more})

    @extend_schema(request=Input, responses={201: MessageOutput, 200: MessageOutput})
    def post(self, request, room_id):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        message, created = services.message_send(user=request.user, room_id=room_id, **data.validated_data)
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

    class Query(serializers.Serializer):
        after_sequence = serializers.IntegerField(min_value=0)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=100)

        class Meta:
            ref_name = "ChangeListQuery"

    @extend_schema(
        parameters=[Query],
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
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages, has_more, last = selectors.changes_page(user=request.user, room_id=room_id, **query.validated_data)
        return Response({"results": [change_frame(m) for m in messages], "has_more": has_more, "last_sequence": last})


class MessageDetailApi(APIView):
    class Input(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)

        class Meta:
            ref_name = "MessageEditInput"

    @extend_schema(request=Input, responses=MessageOutput)
    def patch(self, request, room_id, message_id):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_edit(
            user=request.user, room_id=room_id, message_id=message_id, content=data.validated_data["content"]
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
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.receipt_update(user=request.user, room_id=room_id, **data.validated_data)
        return Response(
            {"delivered_sequence": membership.delivered_sequence, "read_sequence": membership.read_sequence}
        )
