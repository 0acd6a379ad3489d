from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import selectors, services
from rooms.models import Membership, Room
from rooms.payloads import member_payload, room_payload


class RoomListApi(APIView):
    """GET: my rooms (`?discover=1`: public rooms I have not joined). POST: create a room."""

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=80)
        topic = serializers.CharField(max_length=250, required=False, allow_blank=True, default="")
        kind = serializers.ChoiceField(choices=[Room.Kind.PUBLIC, Room.Kind.PRIVATE], default=Room.Kind.PUBLIC)

    def get(self, request):
        if request.query_params.get("discover") in ("1", "true"):
            rooms = [room_payload(room) for room in selectors.room_list_public(user=request.user)[:200]]
        else:
            rooms = [room_payload(m.room, role=m.role) for m in selectors.room_list_for_user(user=request.user)]
        return Response({"results": rooms})

    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_create(creator=request.user, **data.validated_data)
        return Response(room_payload(room, role=Membership.Role.OWNER), status=status.HTTP_201_CREATED)


class RoomDetailApi(APIView):
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=80, required=False)
        topic = serializers.CharField(max_length=250, required=False, allow_blank=True)
        kind = serializers.ChoiceField(choices=[Room.Kind.PUBLIC, Room.Kind.PRIVATE], required=False)

    def get(self, request, room_id):
        room, membership = selectors.room_get_visible(room_id=room_id, user=request.user)
        return Response(room_payload(room, role=membership.role if membership else None))

    def patch(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_update(actor=membership, **data.validated_data)
        return Response(room_payload(room, role=membership.role))

    def delete(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_delete(actor=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomJoinApi(APIView):
    def post(self, request, room_id):
        room, _ = selectors.room_get_visible(room_id=room_id, user=request.user)
        membership = services.room_join(room=room, user=request.user)
        return Response(room_payload(room, role=membership.role))


class RoomLeaveApi(APIView):
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_leave(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListApi(APIView):
    class Input(serializers.Serializer):
        user = serializers.CharField(max_length=150, help_text="User id or username")
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

    def get(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        members = selectors.room_members(room=membership.room)
        return Response({"results": [member_payload(m) for m in members]})

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

    def patch(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=user_id)
        updated = services.membership_update(actor=membership, user=user, role=data.validated_data["role"])
        return Response(member_payload(updated))

    def delete(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        user = selectors.user_find(user_ref=user_id)
        services.membership_remove(actor=membership, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)
