from typing import Annotated, Literal, TypedDict

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from presence.services import room_presence, typing_notify
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


@extend_schema(parameters=[ROOM_ID])
class RoomTypingApi(APIView):
    """I am typing in the room (the socket's `typing` frame, for clients on Server-Sent Events or
    long-polling): the room's other members get a `typing` event. Send it at most every 2 s while
    the user types; faster ones are dropped without an error (typing is a hint, never stored).
    Viewers and outsiders are refused as for the frame."""

    write_scope = "typing"  # core.throttles: the socket's typing budget, per user

    @extend_schema(request=None, responses=documented({204: None}, 403, 404, 429))
    def post(self, request, room_id):
        typing_notify(user=request.user, room_id=room_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
