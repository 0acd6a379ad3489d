"""REST views for rooms and members, and the OpenAPI helpers every app's views use.

Response bodies are built by the payload functions (rooms.payloads, messaging.payloads, ...), and
their schema is generated from the TypedDicts those functions return (`payload_serializer`): one
definition of each shape, so the schema cannot leave out a field that the payload has.
"""

import datetime
import types
import typing
import uuid
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict, get_args, get_origin

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.params import validated
from messaging.selectors import unread_counts
from rooms import selectors, services
from rooms.models import OPEN_ROOM_KINDS, Membership, Room
from rooms.payloads import MemberPayload, RoomListEntry, RoomPayload, member_payload, room_list_entry, room_payload
from workspaces import selectors as workspace_selectors

# --- Schemas generated from the payload TypedDicts ------------------------------------------------

_SERIALIZERS: dict[type, type[serializers.Serializer]] = {}
_FORMATS: dict[object, type[serializers.Field]] = {
    uuid.UUID: serializers.UUIDField,
    datetime.datetime: serializers.DateTimeField,
    OpenApiTypes.UUID: serializers.UUIDField,
    OpenApiTypes.DATETIME: serializers.DateTimeField,
    OpenApiTypes.EMAIL: serializers.EmailField,
}
_BASIC: dict[object, type[serializers.Field]] = {
    str: serializers.CharField,
    int: serializers.IntegerField,
    bool: serializers.BooleanField,
    float: serializers.FloatField,
}


def payload_serializer(shape: type) -> type[serializers.Serializer]:
    """The serializer class that documents the TypedDict `shape` for drf-spectacular: one OpenAPI
    component per shape, named after it (without a `Payload` suffix), its fields, required keys,
    formats, enums and descriptions taken from the TypedDict (see rooms.payloads). Only the schema
    generator uses it; the JSON itself is built by the payload functions."""
    if shape not in _SERIALIZERS:
        if not typing.is_typeddict(shape):
            raise TypeError(f"{shape!r} is not a TypedDict")
        hints = typing.get_type_hints(shape, include_extras=True)
        required: frozenset[str] = getattr(shape, "__required_keys__")  # noqa: B009 (TypedDicts only)
        fields = {name: _field(hint, required=name in required) for name, hint in hints.items()}
        name = shape.__name__.removesuffix("Payload")
        attrs: dict[str, Any] = {**fields, "__module__": shape.__module__, "__doc__": shape.__doc__}
        _SERIALIZERS[shape] = type(name, (serializers.Serializer,), attrs)
    return _SERIALIZERS[shape]


def _field(hint: Any, *, required: bool) -> serializers.Field:
    """A schema-only field for one TypedDict value type."""
    kwargs: dict[str, Any] = {"required": required}
    metadata: list[object] = []
    while True:  # peel NotRequired[...], Annotated[...] and `| None` in any order
        origin, args = get_origin(hint), get_args(hint)
        if origin in (NotRequired, Required):
            hint = args[0]
        elif origin is Annotated:
            hint, metadata = args[0], [*metadata, *hint.__metadata__]
        elif origin in (typing.Union, types.UnionType) and type(None) in args:
            (hint,) = [arg for arg in args if arg is not type(None)]
            kwargs["allow_null"] = True
        else:
            break
    choices = None
    for item in metadata:
        if isinstance(item, str):
            kwargs["help_text"] = item
        elif isinstance(item, type) and issubclass(item, models.Choices):
            choices = item.choices
    formats = [_FORMATS[item] for item in metadata if item in _FORMATS]

    if hint is Any:  # free-form JSON (e.g. a simulation's results, as the engine makes them)
        return serializers.JSONField(**kwargs)
    if typing.is_typeddict(hint):
        return payload_serializer(hint)(**kwargs)
    if origin is list:
        (item,) = args
        if typing.is_typeddict(item):
            return payload_serializer(item)(many=True, **kwargs)
        return serializers.ListField(child=_field(item, required=True), **kwargs)
    if origin is dict:
        return serializers.DictField(child=_field(args[1], required=True), **kwargs)
    if origin is Literal:
        return serializers.ChoiceField(choices=list(args), **kwargs)
    if hint is str and choices is not None:
        return serializers.ChoiceField(choices=choices, **kwargs)
    if hint is str and formats:
        return formats[0](**kwargs)
    if hint in _BASIC:
        return _BASIC[hint](**kwargs)
    raise TypeError(f"No schema for the payload type {hint!r}")


class ErrorDetail(TypedDict):
    code: Annotated[str, "Stable and machine-readable, e.g. `invalid`, `not_found`, `forbidden`, `last_owner`"]
    message: Annotated[str, "For people"]
    fields: NotRequired[Annotated[dict[str, list[str]], "Messages per input field (with `invalid`)"]]
    retry_after_ms: NotRequired[Annotated[int, "When to retry (with 429 and 503; also the Retry-After header)"]]


class ErrorPayload(TypedDict):
    """Every error of the API (core.api): the same shape as the socket's error frames."""

    error: ErrorDetail


_ERRORS = {
    400: "Invalid input (`invalid`, with `fields`) or a refused value",
    401: "Not authenticated, or the token is invalid or expired",
    403: "Not allowed (e.g. `forbidden`, `not_member`, `direct_room`), or a cookie session's write without CSRF",
    404: "Not found, or not visible to me (`not_found`, `user_not_found`)",
    409: "Conflicts with the current state (e.g. `last_owner`, `already_member`, `deleted`, `archived`)",
    410: "No longer valid (e.g. `invitation_expired`)",
    429: "Too many requests: retry after `retry_after_ms`",
    503: "PostgreSQL or Redis is unreachable: nothing was done, retry after `retry_after_ms` (`unavailable`)",
}


def documented(ok: object, *errors: int, authenticated: bool = True) -> dict:
    """`extend_schema(responses=...)` of an operation: its success bodies and the error statuses it
    may answer, each with the error body. 503 is added to every operation, and 401 to every
    operation that needs a user.

    `ok` is a payload TypedDict (for 200), None (no body), or {status: TypedDict, None or
    OpenApiResponse(TypedDict, description)}."""
    success = ok if isinstance(ok, dict) else {status.HTTP_200_OK: ok}
    result: dict[int, Any] = {}
    for code, shape in success.items():
        if isinstance(shape, OpenApiResponse):
            result[code] = OpenApiResponse(payload_serializer(shape.response), description=shape.description)
        else:
            result[code] = None if shape is None else payload_serializer(shape)
    for code in sorted({*errors, 503, *([401] if authenticated else [])}):
        result[code] = OpenApiResponse(payload_serializer(ErrorPayload), description=_ERRORS[code])
    return result


ROOM_ID = OpenApiParameter("room_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
USER_REF = OpenApiParameter("user_id", str, OpenApiParameter.PATH, description="User id or username")
MESSAGE_ID = OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


# --- Views ----------------------------------------------------------------------------------------


class RoomList(TypedDict):
    results: list[RoomListEntry]


class MemberList(TypedDict):
    results: list[MemberPayload]


WORKSPACE = OpenApiParameter(
    "workspace",
    str,
    OpenApiParameter.QUERY,
    required=False,
    description=(
        "The current workspace (id or slug; or the X-Parley-Workspace header); default: my first. "
        "409 `no_workspace` when I am in none"
    ),
)


class RoomListParams(serializers.Serializer):
    # A boolean (1/0, true/false, ...): anything else is `invalid`, not quietly "my rooms".
    discover = serializers.BooleanField(default=False, help_text="List public rooms I have not joined")


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
        parameters=[RoomListParams, WORKSPACE],
        responses=documented(RoomList, 400, 404, 409),
    )
    def get(self, request):
        discover = validated(RoomListParams, request.query_params)["discover"]
        workspace = workspace_selectors.membership_for_request(request)
        if discover:
            public = selectors.room_list_public(user=request.user, workspace=workspace)[:200]
            rooms = [room_list_entry(room) for room in public]
        else:
            unread = unread_counts(user_id=request.user.pk)
            rooms = [
                room_list_entry(m.room, role=m.role, unread=unread.get(str(m.room_id), 0))
                for m in selectors.room_list_for_user(user=request.user, workspace_id=workspace.workspace_id)
            ]
        return Response(RoomList(results=rooms))

    @extend_schema(request=Input, parameters=[WORKSPACE], responses=documented({201: RoomPayload}, 400, 403, 404, 409))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = workspace_selectors.membership_for_request(request)
        room = services.room_create(creator=request.user, workspace=workspace, **data.validated_data)
        return Response(room_payload(room, role=Membership.Role.OWNER), status=status.HTTP_201_CREATED)


class DirectRoomApi(APIView):
    """Open my direct conversation with another person: created on first use (201), the same
    room every time after that (200), whoever of the two opens it."""

    class Input(serializers.Serializer):
        user = serializers.CharField(max_length=150, help_text="User id or username")

        class Meta:
            ref_name = "DirectRoomInput"

    @extend_schema(
        operation_id="rooms_direct_open",
        request=Input,
        parameters=[WORKSPACE],
        responses=documented(
            {
                201: OpenApiResponse(RoomPayload, "Created: the first time either of the two opens it"),
                200: OpenApiResponse(RoomPayload, "The room the two already have"),
            },
            400,
            403,
            404,
            409,
        ),
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = workspace_selectors.membership_for_request(request)
        other = selectors.user_find(user_ref=data.validated_data["user"], workspace_id=workspace.workspace_id)
        room, created = services.direct_room_get_or_create(user=request.user, other=other, workspace=workspace)
        membership = selectors.membership_get(room_id=room.pk, user=request.user)
        return Response(
            room_payload(room, role=membership.role), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


@extend_schema(parameters=[ROOM_ID])
class RoomDetailApi(APIView):
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=80, required=False)
        topic = serializers.CharField(max_length=250, required=False, allow_blank=True)
        kind = serializers.ChoiceField(choices=OPEN_ROOM_KINDS, required=False)

        class Meta:
            ref_name = "RoomDetailInput"

    @extend_schema(responses=documented(RoomPayload, 404))
    def get(self, request, room_id):
        room, membership = selectors.room_get_visible(room_id=room_id, user=request.user)
        return Response(room_payload(room, role=membership.role if membership else None))

    @extend_schema(request=Input, responses=documented(RoomPayload, 400, 403, 404))
    def patch(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_update(actor=membership, **data.validated_data)
        return Response(room_payload(room, role=membership.role))

    @extend_schema(responses=documented({204: None}, 403, 404))
    def delete(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_delete(actor=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[ROOM_ID])
class RoomJoinApi(APIView):
    @extend_schema(request=None, responses=documented(RoomPayload, 403, 404))
    def post(self, request, room_id):
        room, _ = selectors.room_get_visible(room_id=room_id, user=request.user)
        membership = services.room_join(room=room, user=request.user)
        return Response(room_payload(room, role=membership.role))


@extend_schema(parameters=[ROOM_ID])
class RoomLeaveApi(APIView):
    @extend_schema(request=None, responses=documented({204: None}, 403, 404, 409))
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        services.room_leave(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[ROOM_ID])
class RoomOwnerApi(APIView):
    """The owner hands the room to another member: they become its owner, I become an admin (and
    may then leave: `leave/` refuses the last owner with 409 `last_owner`)."""

    class Input(serializers.Serializer):
        user = serializers.CharField(max_length=150, help_text="User id or username of a member")

        class Meta:
            ref_name = "RoomOwnerInput"

    @extend_schema(
        operation_id="rooms_transfer_ownership", request=Input, responses=documented(MemberPayload, 400, 403, 404)
    )
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=data.validated_data["user"], workspace_id=membership.room.workspace_id)
        new_owner = services.ownership_transfer(actor=membership, user=user)
        return Response(member_payload(new_owner))


@extend_schema(parameters=[ROOM_ID])
class MemberListApi(APIView):
    class Input(serializers.Serializer):
        user = serializers.CharField(max_length=150, help_text="User id or username")
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

        class Meta:
            ref_name = "MemberListInput"

    @extend_schema(responses=documented(MemberList, 403, 404))
    def get(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        members = selectors.room_members(room=membership.room)
        return Response(MemberList(results=[member_payload(m) for m in members]))

    @extend_schema(request=Input, responses=documented({201: MemberPayload}, 400, 403, 404, 409))
    def post(self, request, room_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=data.validated_data["user"], workspace_id=membership.room.workspace_id)
        added = services.membership_add(actor=membership, user=user, role=data.validated_data["role"])
        return Response(member_payload(added), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ROOM_ID, USER_REF])
class MemberDetailApi(APIView):
    class Input(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

        class Meta:
            ref_name = "MemberDetailInput"

    @extend_schema(request=Input, responses=documented(MemberPayload, 400, 403, 404, 409))
    def patch(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_find(user_ref=user_id, workspace_id=membership.room.workspace_id)
        updated = services.membership_update(actor=membership, user=user, role=data.validated_data["role"])
        return Response(member_payload(updated))

    @extend_schema(responses=documented({204: None}, 403, 404, 409))
    def delete(self, request, room_id, user_id):
        membership = selectors.membership_get(room_id=room_id, user=request.user)
        user = selectors.user_find(user_ref=user_id, workspace_id=membership.room.workspace_id)
        services.membership_remove(actor=membership, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)
