"""Workspace routes: REST ones spread into /api/v1/ (config/api_urls.py), pages into the site."""

from django.urls import path

from workspaces import api, views

api_urlpatterns = [
    path("workspaces/", api.WorkspaceListApi.as_view(), name="api-workspaces"),
    path("workspaces/invitations/accept/", api.InvitationAcceptApi.as_view(), name="api-workspace-invitation-accept"),
    path("workspaces/<str:workspace_ref>/", api.WorkspaceDetailApi.as_view(), name="api-workspace"),
    path(
        "workspaces/<str:workspace_ref>/members/",
        api.WorkspaceMemberListApi.as_view(),
        name="api-workspace-members",
    ),
    path(
        "workspaces/<str:workspace_ref>/members/<str:user_id>/",
        api.WorkspaceMemberDetailApi.as_view(),
        name="api-workspace-member",
    ),
    path(
        "workspaces/<str:workspace_ref>/invitations/",
        api.InvitationListApi.as_view(),
        name="api-workspace-invitations",
    ),
    path(
        "workspaces/<str:workspace_ref>/invitations/<str:invitation_id>/",
        api.InvitationDetailApi.as_view(),
        name="api-workspace-invitation",
    ),
]

urlpatterns = [
    path("workspaces/switch/", views.workspace_switch, name="workspace-switch"),
    path("workspaces/new/", views.workspace_new, name="workspace-new"),
    path("workspaces/<str:ref>/members/", views.members_page, name="workspace-members"),
    path("workspaces/<str:ref>/manage/", views.workspace_manage, name="workspace-manage"),
    path("invitations/<str:token>/", views.invitation_page, name="workspace-invitation"),
]
