"""REST views for workspaces: mine, create one, members (list, change role, remove), invitations
(create, accept). Writes go through workspaces.services; a workspace I am not in is `not_found`."""

from typing import TypedDict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms.api import USER_REF, documented
from rooms.selectors import user_find
from workspaces import selectors, services
from workspaces.models import Workspace, WorkspaceMembership
from workspaces.payloads import (
    InvitationPayload,
    WorkspaceMemberPayload,
    WorkspacePayload,
    invitation_payload,
    workspace_member_payload,
    workspace_payload,
)

WORKSPACE_REF = OpenApiParameter(
    "workspace_ref", OpenApiTypes.STR, OpenApiParameter.PATH, description="Workspace id or slug"
)


class WorkspaceList(TypedDict):
    results: list[WorkspacePayload]


class WorkspaceMemberList(TypedDict):
    results: list[WorkspaceMemberPayload]


class WorkspaceListApi(APIView):
    """GET: the workspaces I belong to (the first is my default current one). POST: create one (I
    become its owner)."""

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=Workspace.NAME_MAX_LENGTH)
        slug = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")

        class Meta:
            ref_name = "WorkspaceListInput"

    @extend_schema(operation_id="workspaces_list", responses=documented(WorkspaceList))
    def get(self, request):
        memberships = selectors.workspace_list_for_user(user=request.user)
        return Response(WorkspaceList(results=[workspace_payload(m) for m in memberships]))

    @extend_schema(
        operation_id="workspaces_create", request=Input, responses=documented({201: WorkspacePayload}, 400, 409)
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.workspace_create(creator=request.user, **data.validated_data)
        return Response(workspace_payload(membership), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[WORKSPACE_REF])
class WorkspaceMemberListApi(APIView):
    @extend_schema(operation_id="workspaces_members_list", responses=documented(WorkspaceMemberList, 404))
    def get(self, request, workspace_ref):
        membership = selectors.membership_get(user=request.user, workspace=workspace_ref)
        members = selectors.workspace_members(workspace=membership.workspace)
        return Response(WorkspaceMemberList(results=[workspace_member_payload(m) for m in members]))


@extend_schema(parameters=[WORKSPACE_REF, USER_REF])
class WorkspaceMemberDetailApi(APIView):
    class Input(serializers.Serializer):
        role = serializers.ChoiceField(choices=WorkspaceMembership.Role.choices)

        class Meta:
            ref_name = "WorkspaceMemberDetailInput"

    @extend_schema(
        operation_id="workspaces_members_update",
        request=Input,
        responses=documented(WorkspaceMemberPayload, 400, 403, 404, 409),
    )
    def patch(self, request, workspace_ref, user_id):
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_find(user_ref=user_id, workspace_id=actor.workspace_id)
        updated = services.member_role_change(actor=actor, user=user, role=data.validated_data["role"])
        return Response(workspace_member_payload(updated))

    @extend_schema(operation_id="workspaces_members_remove", responses=documented({204: None}, 403, 404, 409))
    def delete(self, request, workspace_ref, user_id):
        """Remove a member (owners and admins), or leave (my own id): their rooms there end too."""
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        user = user_find(user_ref=user_id, workspace_id=actor.workspace_id)
        services.member_remove(actor=actor, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[WORKSPACE_REF])
class InvitationListApi(APIView):
    """Invite: with `email`, an email is sent with the link (used once, by the account with that
    address); without, the answer's link invites whoever has it until it expires."""

    class Input(serializers.Serializer):
        email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")
        # All roles, so that the schema has one enum of them; an owner is never invited (400).
        role = serializers.ChoiceField(choices=WorkspaceMembership.Role.choices, default="member")

        class Meta:
            ref_name = "InvitationListInput"

    @extend_schema(
        operation_id="workspaces_invitations_create",
        request=Input,
        responses=documented({201: InvitationPayload}, 400, 403, 404, 429),
    )
    def post(self, request, workspace_ref):
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        base_url = request.build_absolute_uri("/")
        invitation, token = services.invitation_create(actor=actor, base_url=base_url, **data.validated_data)
        url = services.invitation_url(base_url=base_url, token=token)
        return Response(invitation_payload(invitation, token=token, url=url), status=status.HTTP_201_CREATED)


class InvitationAcceptApi(APIView):
    """Join the workspace an invitation names (`invitation_invalid` 404, `invitation_expired` 410,
    `wrong_account` 403 for an email invitation of another address)."""

    class Input(serializers.Serializer):
        token = serializers.CharField(max_length=500)

        class Meta:
            ref_name = "InvitationAcceptInput"

    @extend_schema(
        operation_id="workspaces_invitations_accept",
        request=Input,
        responses=documented(WorkspacePayload, 400, 403, 404, 410),
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.invitation_accept(user=request.user, token=data.validated_data["token"])
        return Response(workspace_payload(membership))
