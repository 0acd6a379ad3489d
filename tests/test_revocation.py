"""A socket never outlives its credentials: signing out (web or REST), deactivation and a new
password close every socket of the user with 4403, and the old credentials cannot reconnect."""

import asyncio
import json
import urllib.request
import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django.test import Client
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from accounts import services as accounts
from accounts.models import User
from accounts.services import ws_ticket_issue
from messaging.consumers import CLOSE_REVOKED, CLOSE_UNAUTHENTICATED
from messaging.models import Message
from messaging.services import message_send_many
from rooms.services import room_create
from tests.conftest import client_for
from tests.sockets import connect, connect_app, receive_close, receive_type

pytestmark = [pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"


def _signed_in_browser(user: User) -> tuple[Client, list[tuple[bytes, bytes]]]:
    browser = Client()
    assert browser.login(username=user.username, password=PASSWORD)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    return browser, [(b"cookie", cookie), (b"origin", b"http://localhost")]


async def _ticket_socket(user: User):
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=user)
    socket = await connect_app(f"/ws/?ticket={ticket}")
    await receive_type(socket, "session.ready")
    return socket


@pytest.mark.asyncio
async def test_it_closes_the_browsers_sockets_when_it_signs_out(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    browser, headers = await database_sync_to_async(_signed_in_browser)(ada)
    socket = await connect_app(headers=headers)
    await receive_type(socket, "session.ready")
    phone = await _ticket_socket(ada)  # every socket of the user, not only this browser's

    response = await database_sync_to_async(browser.post)("/logout/")

    assert response.status_code == 302
    assert (await receive_close(socket))[0] == CLOSE_REVOKED
    assert (await receive_close(phone))[0] == CLOSE_REVOKED
    again = await connect_app(headers=headers)  # the signed-out session no longer opens sockets
    assert (await receive_close(again))[0] == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_it_closes_the_sockets_on_rest_sign_out(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    api = Client()
    tokens = (
        await database_sync_to_async(api.post)(
            "/api/v1/auth/token/", {"username": "ada", "password": PASSWORD}, content_type="application/json"
        )
    ).json()
    socket = await _ticket_socket(ada)

    response = await database_sync_to_async(api.post)(
        "/api/v1/auth/logout/",
        {"refresh": tokens["refresh"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tokens['access']}",
    )

    assert response.status_code == 205
    assert (await receive_close(socket))[0] == CLOSE_REVOKED


@pytest.mark.asyncio
async def test_it_closes_the_sockets_of_a_user_deactivated_in_admin_and_refuses_them_after(make_user):
    admin = await database_sync_to_async(User.objects.create_superuser)("root", "root@example.com", PASSWORD)
    ada = await database_sync_to_async(make_user)("ada")
    socket, _ = await connect(ada)
    staff = Client()
    await database_sync_to_async(staff.force_login)(admin)
    form = {
        "username": "ada",
        "email": "ada@example.com",
        "date_joined_0": "2026-12-01",
        "date_joined_1": "10:00:00",
        "send_read_receipts": "on",
        # is_active left out: unchecked
    }

    response = await database_sync_to_async(staff.post)(f"/admin/accounts/user/{ada.pk}/change/", form)

    assert response.status_code == 302, response.content[:500]
    assert not (await database_sync_to_async(User.objects.get)(pk=ada.pk)).is_active
    assert (await receive_close(socket))[0] == CLOSE_REVOKED
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    refused = await connect_app(f"/ws/?ticket={ticket}")
    assert (await receive_close(refused))[0] == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_it_closes_the_sockets_when_the_service_deactivates(make_user, events):
    ada, bob = await database_sync_to_async(lambda: (make_user("ada"), make_user("bob")))()
    ada_socket, _ = await connect(ada)
    bob_socket, _ = await connect(bob)

    await database_sync_to_async(accounts.user_set_active)(user=ada, active=False)

    assert (await receive_close(ada_socket))[0] == CLOSE_REVOKED
    assert [e.groups for e in events.of_type("user.revoked")] == [[f"user.{ada.pk}"]]
    # Bob is untouched: his socket still answers.
    await bob_socket.send_json_to({"type": "sync", "room": "00000000-0000-0000-0000-000000000000", "after_sequence": 0})
    assert (await receive_type(bob_socket, "error"))["code"] == "not_found"
    await bob_socket.disconnect()


@pytest.mark.asyncio
async def test_it_closes_the_sockets_when_admin_sets_a_new_password(make_user):
    admin = await database_sync_to_async(User.objects.create_superuser)("root", "root@example.com", PASSWORD)
    ada = await database_sync_to_async(make_user)("ada")
    _, headers = await database_sync_to_async(_signed_in_browser)(ada)
    socket = await connect_app(headers=headers)
    await receive_type(socket, "session.ready")
    staff = Client()
    await database_sync_to_async(staff.force_login)(admin)

    response = await database_sync_to_async(staff.post)(
        f"/admin/accounts/user/{ada.pk}/password/",
        {"password1": "another-horse-battery", "password2": "another-horse-battery"},
    )

    assert response.status_code == 302, response.content[:500]
    assert (await receive_close(socket))[0] == CLOSE_REVOKED
    again = await connect_app(headers=headers)  # the session was tied to the old password
    assert (await receive_close(again))[0] == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_it_closes_the_sockets_when_the_user_changes_password(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    socket, _ = await connect(ada)

    await database_sync_to_async(accounts.user_set_password)(user=ada, password="another-horse-battery")

    assert (await receive_close(socket))[0] == CLOSE_REVOKED


def test_a_deactivated_user_cannot_send_on_any_path_even_before_the_socket_closes(make_user):
    """The send statement itself checks the account (rooms.access): a socket whose close event was
    lost still cannot write."""
    ada = make_user("ada")
    room = room_create(creator=ada, name="Lobby")
    User.objects.filter(pk=ada.pk).update(is_active=False)  # as if the revocation event were lost
    ada.refresh_from_db()
    request = {"user": ada, "room_id": room.pk, "content": "still here?", "client_msg_id": uuid.uuid4()}

    (result,) = message_send_many(requests=[request])
    response = client_for(ada).post(
        f"/api/v1/rooms/{room.pk}/messages/", {"content": "and now?", "client_msg_id": str(uuid.uuid4())}
    )

    assert result.code == "account_inactive"
    assert response.status_code == 403 and response.json()["error"]["code"] == "account_inactive"
    assert Message.objects.count() == 0


@pytest.mark.multiprocess
def test_every_server_process_closes_the_users_sockets(start_server, make_user):
    ada = make_user("ada")
    first, second = start_server(), start_server()

    def ws_url(base: str) -> str:
        def post(path: str, data: dict, token: str | None = None) -> dict:
            headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
            request = urllib.request.Request(base + path, json.dumps(data).encode(), headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        access = post("/api/v1/auth/token/", {"username": "ada", "password": PASSWORD})["access"]
        return base.replace("http", "ws", 1) + "/ws/?ticket=" + post("/api/v1/auth/ws-ticket/", {}, access)["ticket"]

    urls = [ws_url(first), ws_url(second)]

    def deactivate() -> None:
        try:
            accounts.user_set_active(user=ada, active=False)
        finally:
            connections.close_all()  # this thread's connection, before the test database goes

    async def scenario() -> list[int]:
        async with ws_connect(urls[0]) as one, ws_connect(urls[1]) as two:
            for socket in (one, two):
                assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "session.ready"
            await asyncio.to_thread(deactivate)
            codes = []
            for socket in (one, two):
                with pytest.raises(ConnectionClosed):
                    while True:  # presence frames may come first
                        await asyncio.wait_for(socket.recv(), 10)
                codes.append(socket.close_code)
            return codes

    assert asyncio.run(scenario()) == [CLOSE_REVOKED, CLOSE_REVOKED]
