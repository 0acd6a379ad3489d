"""/api/v1/notifications/: the inbox (cursor pages, unread count, mark read) and the per-room levels."""

from typing import Annotated, TypedDict

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import json_object
from messaging.params import validated
from notifications import selectors, services
from notifications.payloads import NotificationPayload, RoomLevelPayload
from rooms.api import ROOM_ID, documented

NOTIFICATION_ID = OpenApiParameter("notification_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class NotificationPage(TypedDict):
    results: Annotated[list[NotificationPayload], "Newest first"]
    next: Annotated[str | None, "The `before` cursor of the next (older) page; null on the last page"]
    unread: Annotated[int, "My unread items (in the rooms I am in)"]


class NotificationRead(TypedDict):
    notification: NotificationPayload
    unread: int


class NotificationsRead(TypedDict):
    marked: Annotated[int, "Items that were unread and are now read"]
    unread: int


class RoomLevelList(TypedDict):
    results: Annotated[list[RoomLevelPayload], "Each of my rooms"]


class InboxParams(serializers.Serializer):
    before = serializers.CharField(required=False, help_text="A cursor: `next` of the previous page")
    limit = serializers.IntegerField(min_value=1, max_value=settings.NOTIFICATION_PAGE_MAX, default=50)
    unread = serializers.BooleanField(required=False, default=False, help_text="Only unread items")


class NotificationListApi(APIView):
    """My inbox, newest first: mentions, @room, replies in my threads, direct messages."""

    @extend_schema(parameters=[InboxParams], responses=documented(NotificationPage, 400))
    def get(self, request):
        params = validated(InboxParams, request.query_params)
        results, cursor = selectors.notifications_page(
            user=request.user, before=params.get("before"), limit=params["limit"], unread_only=params["unread"]
        )
        return Response(
            NotificationPage(results=results, next=cursor, unread=selectors.unread_count(user=request.user))
        )


class NotificationsReadApi(APIView):
    """Mark all my items read, or those of one room (`room`)."""

    class Input(serializers.Serializer):
        room = serializers.UUIDField(required=False, help_text="Only this room's items")

        class Meta:
            ref_name = "NotificationsReadInput"

    @extend_schema(
        operation_id="notifications_read_all", request=Input, responses=documented(NotificationsRead, 400, 403, 404)
    )
    def post(self, request):
        data = validated(self.Input, json_object(request))
        marked, unread = services.notifications_read_all(user=request.user, room_id=data.get("room"))
        return Response(NotificationsRead(marked=marked, unread=unread))


@extend_schema(parameters=[NOTIFICATION_ID])
class NotificationReadApi(APIView):
    """Mark one of my items read (marking it again changes nothing)."""

    @extend_schema(operation_id="notification_read", request=None, responses=documented(NotificationRead, 404))
    def post(self, request, notification_id):
        item, unread = services.notification_read(user=request.user, notification_id=notification_id)
        return Response(NotificationRead(notification=item, unread=unread))


class RoomLevelListApi(APIView):
    """My notification level in each of my rooms."""

    @extend_schema(responses=documented(RoomLevelList))
    def get(self, request):
        return Response(RoomLevelList(results=selectors.room_levels(user=request.user)))


@extend_schema(parameters=[ROOM_ID])
class RoomLevelApi(APIView):
    """PUT my notification level in a room: `all`, `mentions` (the default) or `mute` (every room's
    is in GET notifications/rooms/)."""

    class Input(serializers.Serializer):
        level = serializers.ChoiceField(choices=["all", "mentions", "mute"])

        class Meta:
            ref_name = "RoomLevelInput"

    @extend_schema(request=Input, responses=documented(RoomLevelPayload, 400, 403, 404))
    def put(self, request, room_id):
        level = json_object(request).get("level")
        return Response(services.room_level_set(user=request.user, room_id=room_id, level=level))
