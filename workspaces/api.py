"""REST views for workspaces: mine, create one, rename or delete one, members (list, change role,
remove, leave), invitations (list pending, create, withdraw, accept). Writes go through
workspaces.services; a workspace I am not in is `not_found`."""

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
    PendingInvitationPayload,
    WorkspaceMemberPayload,
    WorkspacePayload,
    invitation_payload,
    pending_invitation_payload,
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


class PendingInvitationList(TypedDict):
    results: list[PendingInvitationPayload]


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
class WorkspaceDetailApi(APIView):
    """GET: one of my workspaces. PATCH: rename it (owners and admins) or change its address, the
    slug (owners; the old one names nothing afterwards). DELETE: delete it with all its rooms
    (owners; `confirm` is its slug; not the default workspace)."""

    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=Workspace.NAME_MAX_LENGTH, required=False)
        slug = serializers.CharField(max_length=50, required=False)

        class Meta:
            ref_name = "WorkspaceDetailInput"

    class DeleteInput(serializers.Serializer):
        confirm = serializers.CharField(max_length=50, help_text="The workspace's slug, typed again")

        class Meta:
            ref_name = "WorkspaceDeleteInput"

    @extend_schema(operation_id="workspaces_retrieve", responses=documented(WorkspacePayload, 404))
    def get(self, request, workspace_ref):
        return Response(workspace_payload(selectors.membership_get(user=request.user, workspace=workspace_ref)))

    @extend_schema(
        operation_id="workspaces_update", request=Input, responses=documented(WorkspacePayload, 400, 403, 404, 409)
    )
    def patch(self, request, workspace_ref):
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        actor.workspace = services.workspace_rename(actor=actor, **data.validated_data)
        return Response(workspace_payload(actor))

    @extend_schema(
        operation_id="workspaces_delete", request=DeleteInput, responses=documented({204: None}, 400, 403, 404, 409)
    )
    def delete(self, request, workspace_ref):
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        data = self.DeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.workspace_delete(actor=request.user, workspace=actor.workspace, confirm=data.validated_data["confirm"])
        return Response(status=status.HTTP_204_NO_CONTENT)


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

    @extend_schema(operation_id="workspaces_invitations_list", responses=documented(PendingInvitationList, 403, 404))
    def get(self, request, workspace_ref):
        """Invitations that can still be used (owners and admins)."""
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        base_url = request.build_absolute_uri("/")
        return Response(
            PendingInvitationList(
                results=[
                    pending_invitation_payload(
                        invitation,
                        url=services.invitation_url(base_url=base_url, token=services.invitation_token(invitation)),
                    )
                    for invitation in services.invitations_list(actor=actor)[:500]
                ]
            )
        )

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


@extend_schema(parameters=[WORKSPACE_REF, OpenApiParameter("invitation_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
class InvitationDetailApi(APIView):
    @extend_schema(operation_id="workspaces_invitations_revoke", responses=documented({204: None}, 403, 404, 409))
    def delete(self, request, workspace_ref, invitation_id):
        """Withdraw an invitation (owners and admins): its link or email stops working."""
        actor = selectors.membership_get(user=request.user, workspace=workspace_ref)
        services.invitation_revoke(actor=actor, invitation_id=invitation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


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
