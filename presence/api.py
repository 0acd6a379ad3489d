from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from presence.services import room_presence
from rooms.api import UserOutput


class RoomPresenceApi(APIView):
    """Who in the room is online, away or offline right now."""

    @extend_schema(
        responses=inline_serializer(
            "RoomPresence",
            {
                "results": inline_serializer(
                    "MemberPresence",
                    {
                        "user": UserOutput(),
                        "status": serializers.ChoiceField(choices=["online", "away", "offline"]),
                        "last_seen_at": serializers.DateTimeField(allow_null=True),
                    },
                    many=True,
                )
            },
        )
    )
    def get(self, request, room_id):
        return Response({"results": room_presence(user=request.user, room_id=room_id)})
