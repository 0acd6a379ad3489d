from typing import Annotated, Literal, TypedDict

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from presence.services import room_presence
from rooms.api import ROOM_ID, documented
from rooms.payloads import DateTimeStr, UserPayload


class MemberPresence(TypedDict):
    """One member's presence (presence.services.room_presence)."""

    user: UserPayload
    status: Literal["online", "away", "offline"]
    last_seen_at: Annotated[DateTimeStr | None, "When the member was last active; null if never seen"]


class RoomPresence(TypedDict):
    results: list[MemberPresence]


@extend_schema(parameters=[ROOM_ID])
class RoomPresenceApi(APIView):
    """Who in the room is online, away or offline right now."""

    @extend_schema(responses=documented(RoomPresence, 403, 404))
    def get(self, request, room_id):
        return Response({"results": room_presence(user=request.user, room_id=room_id)})
