from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.selectors import unread_counts
from rooms import selectors, services
from rooms.models import OPEN_ROOM_KINDS, Membership, Room
from rooms.payloads import member_payload, room_payload


class UserOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class RoomOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    topic = serializers.CharField()
    kind = serializers.ChoiceField(choices=Room.Kind.choices)
    created_by = UserOutput(allow_null=True)
    created_at = serializers.DateTimeField()
    last_sequence = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, allow_null=True)


class MemberOutput(serializers.Serializer):
    user = UserOutput()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    joined_at = serializers.DateTimeField()


def _results(name: str, item: serializers.Serializer):
    return inline_serializer(name, {"results": item})


class RoomListApi(APIView):
    """GET: my rooms (`?discover=1`: public rooms I have not joined). POST: create a room."""

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=80)
        topic = serializers.CharField(max_length=250, required=False, allow_blank=True, default="")
        kind = serializers.ChoiceField(choices=OPEN_ROOM_KINDS, default=Room.Kind.PUBLIC)

        class Meta:
            ref_name = "RoomListInput"

    @extend_schema(
        operation_id="rooms_list",
        parameters=[OpenApiParameter("discover", bool, description="List public rooms I have not joined")],
        responses=_results("RoomList", RoomOutput(many=True)),
    )
    def get(self, request):
        if request.query_params.get("discover") in ("1", "true"):
            rooms = [room_payload(room) for room in selectors.room_list_public(user=request.user)[:200]]
        else:
            unread = unread_counts(user_id=request.user.pk)
            rooms = [
                {**room_payload(m.room, role=m.role), "unread": unread.get(str(m.room_id), 0)}
                for m in selectors.room_list_for_user(user=request.user)
            ]
        return Response({"results": rooms})

    @extend_schema(request=Input, responses={201: RoomOutput})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_create(creator=request.user, **data.validated_data)
        return Response(room_payload(room, role=Membership.Role.OWNER), status=status.HTTP_201_CREATED)


class RoomDetailApi(APIView):
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=80, required=False)
        topic = serializers.CharField(max_length=250, required=False, allow_blank=True)
        kind = serializers.ChoiceField(choices=OPEN_ROOM_KINDS, required=False)

        class Meta:
            ref_name = "RoomDetailInput"

    @extend_schema(responses=RoomOutput)
    def get(self, request, room_id):
        room, membership = selectors.room_get_visible(room_id=room_id, user=request.user)
        return Response(room_payload(room, role=membership.role if membership else None))

    @extend_schema(request=Input, responses=RoomOutput)
    def patch(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_update(actor=membership, **data.validated_data)
        return Response(room_payload(room, role=membership.role))

    @extend_schema(responses={204: None})
    def delete(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_delete(actor=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomJoinApi(APIView):
    @extend_schema(request=None, responses=RoomOutput)
    def post(self, request, room_id):
        room, _ = selectors.room_get_visible(room_id=room_id, user=request.user)
        membership = services.room_join(room=room, user=request.user)
        return Response(room_payload(room, role=membership.role))


class RoomLeaveApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_leave(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListApi(APIView):
    class Input(serializers.Serializer):
        user = serializers.CharField(max_length=150, help_text="User id or username")
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

        class Meta:
            ref_name = "MemberListInput"

    @extend_schema(responses=_results("MemberList", MemberOutput(many=True)))
    def get(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        members = selectors.room_members(room=membership.room)
        return Response({"results": [member_payload(m) for m in members]})

    @extend_schema(request=Input, responses={201: MemberOutput})
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=data.validated_data["user"])
        added = services.membership_add(actor=membership, user=user, role=data.validated_data["role"])
        return Response(member_payload(added), status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    class Input(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

        class Meta:
            ref_name = "MemberDetailInput"

    @extend_schema(request=Input, responses=MemberOutput)
    def patch(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=user_id)
        updated = services.membership_update(actor=membership, user=user, role=data.validated_data["role"])
        return Response(member_payload(updated))

    @extend_schema(responses={204: None})
    def delete(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        user = selectors.user_find(user_ref=user_id)
        services.membership_remove(actor=membership, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)
