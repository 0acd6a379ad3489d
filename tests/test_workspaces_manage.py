"""Workspaces, the second slice (issue 18; docs/workspaces.md): an account in no workspace,
managing a workspace (rename, address, withdrawing invitations, deleting, leaving), the members
page, and what a removal does to the removed person's open sockets."""

import pytest
from django.test import Client

from tests.conftest import client_for
from workspaces import services
from workspaces.models import Workspace, WorkspaceMembership

V1 = "/api/v1"


def code_of(response) -> tuple[int, str | None]:
    body = response.json() if response.get("Content-Type") == "application/json" else None
    return response.status_code, body["error"]["code"] if body and "error" in body else None


@pytest.fixture
def acme(db, make_user):
    """Acme: ana owns it, bob is a member. Both are in the default workspace too."""
    ana, bob = make_user("ana"), make_user("bob")
    workspace = services.workspace_create(creator=ana, name="Acme").workspace
    WorkspaceMembership.objects.create(workspace=workspace, user=bob, role="member")
    return {"ana": ana, "bob": bob, "acme": workspace}


# -- an account in no workspace --------------------------------------------------------------------


def test_an_account_in_no_workspace_gets_a_page_and_a_clear_api_error(acme, make_user):
    ana = acme["ana"]
    dora = make_user("dora")
    # Leaving one's last workspace is allowed now that an account in none is handled.
    assert client_for(dora).delete(f"{V1}/workspaces/default/members/dora/").status_code == 204
    assert not WorkspaceMembership.objects.filter(user=dora).exists()
    invitation, _ = services.invitation_create(
        actor=WorkspaceMembership.objects.get(user=ana, workspace=acme["acme"]),
        email="DORA@example.com",
        base_url="http://testserver/",
    )

    api = client_for(dora)
    for method, path, body in (
        ("get", f"{V1}/rooms/", None),
        ("get", f"{V1}/rooms/?discover=1", None),
        ("post", f"{V1}/rooms/", {"name": "Mine"}),
        ("post", f"{V1}/rooms/direct/", {"user": "ana"}),
        ("get", f"{V1}/search/?q=hello", None),
    ):
        answer = getattr(api, method)(path, body, format="json") if body else getattr(api, method)(path)
        assert code_of(answer) == (409, "no_workspace"), path
        assert "create one" in answer.json()["error"]["message"]
    assert api.get(f"{V1}/workspaces/").json()["results"] == []

    browser = Client()
    browser.force_login(dora)
    home = browser.get("/")
    page = home.content.decode()
    assert home.status_code == 200 and 'data-testid="no-workspace"' in page
    assert "Acme" in page and f"/invitations/{services.invitation_token(invitation)}/" in page
    assert '<label for="workspace-name">Name</label>' in page
    # The page's forms that need a workspace refuse with a message, not a 500.
    refused = browser.post("/rooms/new/", {"name": "Mine", "kind": "public"}, follow=True)
    assert refused.status_code == 200 and "not a member of any workspace" in refused.content.decode()
    # Creating one makes it current; the home page is the usual one again.
    made = browser.post("/workspaces/new/", {"name": "Dora's place"})
    assert made.status_code == 302 and made["Location"] == "/"
    created = Workspace.objects.get(slug="doras-place")
    assert browser.session["workspace_id"] == created.pk
    assert WorkspaceMembership.objects.get(user=dora).role == "owner"
    home = browser.get("/").content.decode()
    assert 'data-testid="my-rooms"' in home and "Dora&#x27;s place" in home
