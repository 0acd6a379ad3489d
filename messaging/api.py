from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
from messaging.payloads import message_payload
from rooms.api import UserOutput


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    room = serializers.UUIDField()
    sequence = serializers.IntegerField()
    sender = UserOutput(allow_null=True)
    content = serializers.CharField()
    client_msg_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()


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
