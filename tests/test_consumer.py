"""The WebSocket consumer against the real Redis channel layer and PostgreSQL."""

import asyncio
import datetime as dt
import json
import time
import uuid

import pytest
import redis
from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from websockets.protocol import State

from accounts.services import _ticket_key, ws_ticket_issue
from config.asgi import application
from core import wire
from messaging import consumers
from messaging import services as messaging_services
from messaging.models import Message, SentMessageKey
from presence.services import presence_of
from rooms import services as rooms_services
from rooms.models import Room
from rooms.selectors import membership_get
from rooms.services import membership_add, membership_remove
from tests.conftest import await_until, nothing_but_presence, receive_types, room_with
from tests.sockets import TIMEOUT, connect, connect_app, receive_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def cast(make_user):
    """A private room with an owner, a member and a viewer, and an outsider."""

    def build():
        owner, member, viewer, outsider = (make_user(n) for n in ("owner", "member", "viewer", "outsider"))
        room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
        return {"room": room, "owner": owner, "member": member, "viewer": viewer, "outsider": outsider}

    return database_sync_to_async(build)


def send_frame(room, content="hi", key=None) -> dict:
    return {"type": "message.send", "room": str(room.pk), "content": content, "client_msg_id": str(key or uuid.uuid4())}


async def test_it_acks_the_sender_and_delivers_to_every_member_in_order(cast):
    people = await cast()
    room = people["room"]
    owner, _ = await connect(people["owner"])
    member, ready = await connect(people["member"])
    viewer, _ = await connect(people["viewer"])
    outsider, _ = await connect(people["outsider"])
    assert ready["rooms"] == {str(room.pk): 0}

    key = uuid.uuid4()
    await owner.send_json_to(send_frame(room, "<b>hello</b>", key))
    own = await receive_types(owner, "message.ack", "message.new")
    ack = own["message.ack"]
    assert ack["client_msg_id"] == str(key) and ack["message"]["sequence"] == 1
    for socket in (owner, member, viewer):
        new = own["message.new"] if socket is owner else await receive_type(socket, "message.new")
        assert new["room"] == str(room.pk)
        assert new["message"] == ack["message"]
    # The message went out before the owner's ack: had it reached the outsider, it would be there.
    assert await nothing_but_presence(outsider)

    for i in range(2, 6):
        await member.send_json_to(send_frame(room, f"m{i}"))
    sequences = [(await receive_type(viewer, "message.new"))["message"]["sequence"] for _ in range(2, 6)]
    assert sequences == [2, 3, 4, 5]
    for socket in (owner, member, viewer, outsider):
        await socket.disconnect(timeout=TIMEOUT)


async def test_a_resend_on_the_socket_gets_the_same_message_and_no_broadcast(cast, events):
    people = await cast()
    room = people["room"]
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    key = uuid.uuid4()
    await owner.send_json_to(send_frame(room, "once", key))
    first = await receive_type(owner, "message.ack")
    await receive_type(member, "message.new")
    await owner.send_json_to(send_frame(room, "once", key))
    second = await receive_type(owner, "message.ack")
    assert first == second
    assert await nothing_but_presence(member)
    assert [e.event["seq"] for e in events.of_type("room.sequenced")] == [1]  # the first send only
    assert await database_sync_to_async(Message.objects.count)() == 1
    await owner.disconnect(timeout=TIMEOUT)
    await member.disconnect(timeout=TIMEOUT)


async def test_viewers_and_outsiders_cannot_send(cast):
    people = await cast()
    room = people["room"]
    viewer, _ = await connect(people["viewer"])
    outsider, _ = await connect(people["outsider"])
    key = uuid.uuid4()
    await viewer.send_json_to(send_frame(room, "hi", key))
    error = await receive_type(viewer, "error")
    assert error == {
        "type": "error",
        "code": "forbidden",
        "message": "Viewers can read this room but not write to it.",
        "ref": str(key),
    }
    await outsider.send_json_to(send_frame(room))
    assert (await receive_type(outsider, "error"))["code"] == "not_found"
    await outsider.send_json_to(send_frame(type("R", (), {"pk": uuid.uuid4()})))
    assert (await receive_type(outsider, "error"))["code"] == "not_found"
    assert await database_sync_to_async(Message.objects.count)() == 0
    await viewer.disconnect(timeout=TIMEOUT)
    await outsider.disconnect(timeout=TIMEOUT)


# A fixed key: the frames are refused before it counts, and the test ids must be the same in every
# process that collects them (pytest-xdist).
KEY = "3f2b6c1e-8d4a-4c57-9e0b-5a7d2f1c6e90"


@pytest.mark.parametrize(
    "raw,code",
    [
        ("{nope", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"room": "x"}', "invalid_frame"),
        ('{"type": 5}', "invalid_frame"),
        ('{"type": "message.fly"}', "unknown_type"),
        ('{"type": "message.send", "content": "hi", "client_msg_id": "%s"}' % KEY, "invalid"),
        ('{"type": "message.send", "room": 7, "content": "hi", "client_msg_id": "%s"}' % KEY, "invalid"),
        ('{"type": "message.send", "room": "ROOM", "client_msg_id": "%s"}' % KEY, "invalid"),
        ('{"type": "message.send", "room": "ROOM", "content": "hi"}', "invalid"),
        ('{"type": "message.send", "room": "ROOM", "content": "hi", "client_msg_id": "zz"}', "invalid"),
        (
            '{"type": "message.send", "room": "ROOM", "content": "%s", "client_msg_id": "%s"}' % ("x" * 4001, KEY),
            "too_large",
        ),
    ],
)
async def test_bad_frames_get_a_stable_error_change_nothing_and_keep_the_socket(cast, raw, code):
    people = await cast()
    owner, _ = await connect(people["owner"])
    await owner.send_to(text_data=raw.replace("ROOM", str(people["room"].pk)))
    error = await receive_type(owner, "error")
    assert error["code"] == code and error["message"]
    assert await database_sync_to_async(Message.objects.count)() == 0
    assert await database_sync_to_async(SentMessageKey.objects.count)() == 0
    # Still open and working.
    await owner.send_json_to(send_frame(people["room"], "after"))
    assert (await receive_type(owner, "message.ack"))["message"]["sequence"] == 1
    await owner.disconnect(timeout=TIMEOUT)


async def test_binary_frames_are_refused(cast):
    people = await cast()
    owner, _ = await connect(people["owner"])
    await owner.send_to(bytes_data=b"\x00\x01")
    assert (await receive_type(owner, "error"))["code"] == "invalid_frame"
    await owner.disconnect(timeout=TIMEOUT)


async def test_an_oversized_frame_gets_too_large_then_close_1009(cast):
    people = await cast()
    owner, _ = await connect(people["owner"])
    await owner.send_to(text_data=json.dumps(send_frame(people["room"], "x" * (65 * 1024))))
    assert (await receive_type(owner, "error"))["code"] == "too_large"
    assert await owner.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1009}
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_a_member_added_while_connected_starts_receiving_without_reconnecting(cast):
    people = await cast()
    room = people["room"]
    outsider, ready = await connect(people["outsider"])
    assert ready["rooms"] == {}
    owner_membership = await database_sync_to_async(membership_get)(room_id=room.pk, user=people["owner"])
    await database_sync_to_async(membership_add)(actor=owner_membership, user=people["outsider"])
    added = await receive_type(outsider, "room.added")
    assert added["room"]["id"] == str(room.pk) and added["room"]["role"] == "member"
    owner, _ = await connect(people["owner"])
    await owner.send_json_to(send_frame(room, "welcome"))
    assert (await receive_type(outsider, "message.new"))["message"]["content"] == "welcome"
    await outsider.disconnect(timeout=TIMEOUT)
    await owner.disconnect(timeout=TIMEOUT)


async def test_a_removed_member_stops_receiving_at_once(cast):
    people = await cast()
    room = people["room"]
    member, _ = await connect(people["member"])
    owner, _ = await connect(people["owner"])
    owner_membership = await database_sync_to_async(membership_get)(room_id=room.pk, user=people["owner"])
    await database_sync_to_async(membership_remove)(actor=owner_membership, user=people["member"])
    removed = await receive_type(member, "room.removed")
    assert removed["room"] == str(room.pk)
    await owner.send_json_to(send_frame(room, "secret"))
    await receive_type(owner, "message.ack")
    assert await nothing_but_presence(member)  # published before the ack, so it would be there
    await member.send_json_to(send_frame(room, "let me in"))
    assert (await receive_type(member, "error"))["code"] == "not_found"
    await member.disconnect(timeout=TIMEOUT)
    await owner.disconnect(timeout=TIMEOUT)


async def test_a_lost_event_is_filled_from_the_database_in_order(cast, monkeypatch):
    people = await cast()
    room = people["room"]
    member, _ = await connect(people["member"])
    # The channel layer is at-most-once: lose the announcement of message 1 on purpose.
    monkeypatch.setattr(messaging_services, "send_event", lambda groups, event: None)
    await database_sync_to_async(messaging_services.message_send)(
        user=people["owner"], room_id=room.pk, content="lost", client_msg_id=uuid.uuid4()
    )
    monkeypatch.undo()
    await database_sync_to_async(messaging_services.message_send)(
        user=people["owner"], room_id=room.pk, content="found", client_msg_id=uuid.uuid4()
    )
    first = await receive_type(member, "message.new")
    second = await receive_type(member, "message.new")
    assert [
        (first["message"]["sequence"], first["message"]["content"]),
        (second["message"]["sequence"], second["message"]["content"]),
    ] == [(1, "lost"), (2, "found")]
    await member.disconnect(timeout=TIMEOUT)


async def test_unauthenticated_sockets_are_closed_with_4401():
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")]
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}


async def _ticket_connect(ticket: str, origin: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"host", b"localhost")] + ([(b"origin", origin)] if origin else [])
    communicator = WebsocketCommunicator(application, f"/ws/?ticket={ticket}", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def test_a_ticket_authenticates_once(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    first = await _ticket_connect(ticket)
    ready = await first.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready" and ready["user"] == ada.pk
    second = await _ticket_connect(ticket, origin=b"http://localhost")
    assert await second.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}
    bogus = await _ticket_connect("not-a-ticket")
    assert await bogus.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}
    await first.disconnect(timeout=TIMEOUT)


async def test_a_ticket_asked_for_with_a_token_is_issued_on_the_loop(make_user, monkeypatch):
    """POST auth/ws-ticket/ with a Bearer token: answered without a worker thread (accounts.api),
    and the ticket opens a socket. A bad token and a session still get DRF's answers."""
    ada = await database_sync_to_async(make_user)("ada")
    hops: list[object] = []
    call = SyncToAsync.__call__
    monkeypatch.setattr(SyncToAsync, "__call__", lambda self, *a, **k: hops.append(self.func) or call(self, *a, **k))
    client = AsyncClient()

    issued = await client.post(
        "/api/v1/auth/ws-ticket/", headers={"Authorization": f"Bearer {AccessToken.for_user(ada)}"}
    )

    assert issued.status_code == 200 and issued.json()["expires_in"] == 30
    assert [getattr(f, "__qualname__", f) for f in hops if "View" in getattr(f, "__qualname__", "")] == []
    socket = await _ticket_connect(issued.json()["ticket"])
    assert (await socket.receive_json_from(timeout=TIMEOUT))["user"] == ada.pk
    await socket.disconnect(timeout=TIMEOUT)
    refused = await client.post("/api/v1/auth/ws-ticket/", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_not_valid"
    await database_sync_to_async(client.force_login)(ada)
    by_session = await client.post("/api/v1/auth/ws-ticket/")  # through DRF (AsyncClient skips CSRF)
    assert by_session.status_code == 200 and by_session.json()["ticket"]
    for header in ("Allow", "Content-Type"):  # the same answer, whichever path gave it
        assert issued.headers[header] == by_session.headers[header], header


async def test_a_socket_opened_with_a_token_and_closed_makes_no_thread_hop(make_user, cast, monkeypatch):
    """A reconnect storm opens and closes sockets by the thousand: none of it waits for a worker
    thread (Channels' own disconnect closes stale connections in a hop to asgiref's one thread)."""
    people = await cast()
    hops: list[object] = []
    call = SyncToAsync.__call__
    monkeypatch.setattr(SyncToAsync, "__call__", lambda self, *a, **k: hops.append(self.func) or call(self, *a, **k))
    token = AccessToken.for_user(people["member"])
    socket = await connect_app("/ws/", headers=[(b"authorization", f"Bearer {token}".encode())])
    ready = await receive_type(socket, "session.ready")
    assert ready["rooms"] == {str(people["room"].pk): 0}
    member = people["member"].pk
    await await_until(lambda: presence_of(user_ids=[member])[member]["status"] == "online", what="the first beat")
    await socket.disconnect(timeout=TIMEOUT)
    assert [getattr(f, "__qualname__", f) for f in hops] == []
    assert presence_of(user_ids=[member])[member]["status"] == "offline"  # the socket's goodbye still went


async def test_an_expired_ticket_is_refused(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    with override_settings(WS_TICKET_TTL_SECONDS=1):
        ticket, ttl = await database_sync_to_async(ws_ticket_issue)(user=ada)
    assert ttl == 1
    store, key = redis.Redis.from_url(settings.REDIS_URL), _ticket_key(ticket)
    assert 0 < store.pttl(key) <= 1000
    await await_until(lambda: not store.exists(key), what="the ticket's expiry")
    communicator = await _ticket_connect(ticket)
    assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}


async def test_inactive_users_cannot_connect_with_a_ticket(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    ada.is_active = False
    await database_sync_to_async(ada.save)()
    communicator = await _ticket_connect(ticket)
    assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}


async def _bearer_connect(authorization: bytes, *extra: tuple[bytes, bytes]) -> WebsocketCommunicator:
    headers = [(b"host", b"localhost"), (b"authorization", authorization), *extra]
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def test_a_native_client_connects_with_its_access_token(make_user):
    """`Authorization: Bearer <access>` on the handshake, no Origin (a native client): no ticket
    round trip. The token is checked as the REST API checks it."""
    ada = await database_sync_to_async(make_user)("ada")
    socket = await _bearer_connect(f"Bearer {AccessToken.for_user(ada)}".encode())
    ready = await socket.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready" and ready["user"] == ada.pk
    await socket.disconnect(timeout=TIMEOUT)


async def test_a_bad_expired_or_refresh_token_or_an_inactive_user_gets_4401(make_user, client):
    ada = await database_sync_to_async(make_user)("ada")
    await database_sync_to_async(client.force_login)(ada)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    expired = AccessToken.for_user(ada)
    expired.set_exp(lifetime=-dt.timedelta(seconds=1))
    refresh = await database_sync_to_async(RefreshToken.for_user)(ada)  # recorded (the blacklist app)
    refused = [
        b"Bearer not-a-token",
        b"Bearer two parts",
        f"Bearer {expired}".encode(),
        f"Bearer {refresh}".encode(),  # a refresh token is no access token
    ]
    for authorization in refused:  # a session cookie alongside does not rescue a bad token
        socket = await _bearer_connect(authorization, (b"cookie", cookie), (b"origin", b"http://localhost"))
        assert await socket.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}
    token = f"Bearer {AccessToken.for_user(ada)}".encode()
    ada.is_active = False
    await database_sync_to_async(ada.save)()
    socket = await _bearer_connect(token)
    assert await socket.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}


async def test_a_browser_behind_basic_auth_still_connects_with_its_cookie(make_user, client):
    """Browsers send a site's HTTP Basic credentials with its WebSocket handshakes too: another
    scheme than Bearer is no token, and the session cookie decides (with the Origin check)."""
    ada = await database_sync_to_async(make_user)("ada")
    await database_sync_to_async(client.force_login)(ada)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    socket = await _bearer_connect(b"Basic YWRhOnB3", (b"cookie", cookie), (b"origin", b"http://localhost"))
    ready = await socket.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready" and ready["user"] == ada.pk
    await socket.disconnect(timeout=TIMEOUT)
    headers = [(b"host", b"localhost"), (b"authorization", b"Basic YWRhOnB3"), (b"cookie", cookie)]
    without_origin = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await without_origin.connect(timeout=TIMEOUT)
    assert not connected  # a cookie needs an Origin of ours, Basic credentials or not


async def test_a_token_from_a_foreign_origin_is_refused_at_the_handshake(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    headers = [(b"authorization", f"Bearer {AccessToken.for_user(ada)}".encode()), (b"origin", b"https://evil.example")]
    communicator = WebsocketCommunicator(application, "/ws/", headers=[(b"host", b"localhost"), *headers])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert not connected


async def test_a_foreign_origin_is_refused_at_the_handshake(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    communicator = WebsocketCommunicator(
        application, f"/ws/?ticket={ticket}", headers=[(b"host", b"localhost"), (b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert not connected


async def test_a_socket_on_another_path_is_refused_at_the_handshake(make_user):
    """/ws/ is the one WebSocket (config.asgi calls it without a router): any other path is
    refused before anything is read, its ticket left unused."""
    ada = await database_sync_to_async(make_user)("ada")
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    for path in (f"/ws/other/?ticket={ticket}", f"/socket/?ticket={ticket}"):
        communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost")])
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert not connected
    communicator = await _ticket_connect(ticket)
    assert (await receive_type(communicator, "session.ready"))["user"] == ada.pk
    await communicator.disconnect()


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _cookie_connect(cookie: bytes, origin: bytes | None) -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"host", b"localhost"), (b"cookie", cookie)] + ([(b"origin", origin)] if origin else [])
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


async def test_browsers_sign_in_with_their_session_cookie_from_an_allowed_origin_only(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    cookie = await database_sync_to_async(_session_cookie)(ada)
    page, connected = await _cookie_connect(cookie, origin=b"http://localhost")
    assert connected
    ready = await page.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready" and ready["user"] == ada.pk
    await page.disconnect(timeout=TIMEOUT)
    # The cookie alone, from another site or with no Origin at all (not a browser, and no ticket).
    for origin in (b"https://evil.example", None):
        _, connected = await _cookie_connect(cookie, origin=origin)
        assert not connected
    # A session that is not (or no longer) valid is anonymous.
    stale, connected = await _cookie_connect(f"{settings.SESSION_COOKIE_NAME}=nope".encode(), b"http://localhost")
    assert connected
    assert await stale.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4401}


async def test_a_session_cookie_stops_working_as_django_says_it_should(make_user, settings):
    """The socket reads sessions on its own connection (accounts.middleware): the same rules as
    django.contrib.auth.get_user. Each case: a session that worked, then what ends it."""

    async def refused(cookie: bytes) -> bool:
        page, connected = await _cookie_connect(cookie, origin=b"http://localhost")
        assert connected
        frame = await page.receive_output(timeout=TIMEOUT)
        return frame == {"type": "websocket.close", "code": 4401}

    # A password change signs out every session made before it.
    ada = await database_sync_to_async(make_user)("ada")
    cookie = await database_sync_to_async(_session_cookie)(ada)
    assert not await refused(cookie)
    ada.set_password("a new password, long enough")
    await database_sync_to_async(ada.save)()
    assert await refused(cookie)

    # An expired session, and a deactivated account.
    bob = await database_sync_to_async(make_user)("bob")
    cookie = await database_sync_to_async(_session_cookie)(bob)
    key = cookie.decode().split("=", 1)[1]
    await database_sync_to_async(
        lambda: Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    )()
    assert await refused(cookie)
    cookie = await database_sync_to_async(_session_cookie)(bob)
    assert not await refused(cookie)
    bob.is_active = False
    await database_sync_to_async(bob.save)()
    assert await refused(cookie)

    # After SECRET_KEY is rotated, a session made with the old one still verifies through
    # SECRET_KEY_FALLBACKS; without the fallback it does not.
    eve = await database_sync_to_async(make_user)("eve")
    cookie = await database_sync_to_async(_session_cookie)(eve)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = old + "-rotated", [old]
    assert not await refused(cookie)
    settings.SECRET_KEY_FALLBACKS = []
    assert await refused(cookie)


async def test_a_removal_still_applies_if_the_user_group_event_is_lost(cast, monkeypatch):
    people = await cast()
    room = people["room"]
    member, _ = await connect(people["member"])
    owner_membership = await database_sync_to_async(membership_get)(room_id=room.pk, user=people["owner"])
    real_send_event = rooms_services.send_event

    def lossy(groups, event):  # drop everything addressed to the member's personal group
        if groups != [f"user.{people['member'].pk}"]:
            real_send_event(groups, event)

    monkeypatch.setattr(rooms_services, "send_event", lossy)
    await database_sync_to_async(membership_remove)(actor=owner_membership, user=people["member"])
    assert (await receive_type(member, "room.removed"))["room"] == str(room.pk)
    monkeypatch.undo()
    await database_sync_to_async(messaging_services.message_send)(
        user=people["owner"], room_id=room.pk, content="secret", client_msg_id=uuid.uuid4()
    )
    assert await nothing_but_presence(member)  # published (after commit) before message_send returned
    await member.disconnect(timeout=TIMEOUT)


class Clock:
    """messaging.consumers' `time`, with a monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


async def test_a_silent_socket_is_closed_and_a_heartbeating_one_is_not(cast, monkeypatch):
    """No protocol pings: liveness is the client's heartbeat, and silence closes with 4408."""
    clock = Clock()
    monkeypatch.setattr(consumers, "time", clock)
    monkeypatch.setattr(consumers.Liveness, "SWEEP_SECONDS", 0.01)
    people = await cast()
    silent, _ = await connect(people["member"])
    beating, _ = await connect(people["owner"])
    (beating_consumer,) = [s for s in consumers.liveness().sockets if s.user.pk == people["owner"].pk]
    clock.now += consumers.SILENT_CLOSE_SECONDS - 1  # both quiet, both still within the limit
    await beating.send_json_to({"type": "heartbeat", "active": False})
    await await_until(lambda: beating_consumer.last_frame_at == clock.now, what="the heartbeat")
    clock.now += 2  # the silent socket is now past the limit; the beating one heard from a second ago
    while (output := await silent.receive_output(timeout=TIMEOUT))["type"] != "websocket.close":
        pass
    assert output == {"type": "websocket.close", "code": consumers.CLOSE_SILENT}
    # The sweep that closed the silent socket judged the other at the same moment, and the clock
    # has not moved since: it is still open (a close would come before the marker's answer).
    assert await nothing_but_presence(beating)
    await silent.disconnect(timeout=TIMEOUT)
    await beating.disconnect(timeout=TIMEOUT)


class GapWaits:
    """messaging.consumers' `asyncio`, where a gap's wait (a sleep of GAP_WAIT_SECONDS or more)
    lasts until the test ends it: which holes fill before their wait ends is up to the test, not
    to how busy the machine is."""

    def __init__(self) -> None:
        self.waits: list[tuple[asyncio.Task, asyncio.Future]] = []
        self.changed = asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result=None):
        if delay < consumers.GAP_WAIT_SECONDS:
            return await asyncio.sleep(delay, result)
        ended = asyncio.get_running_loop().create_future()
        self.waits.append((asyncio.current_task(), ended))
        self.changed.set()
        await ended
        return result

    async def started(self, count: int) -> None:
        """Until `count` waits have started."""
        while len(self.waits) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), TIMEOUT)

    def end(self, index: int) -> asyncio.Task:
        """End a wait; the gap task that waited, to await."""
        task, ended = self.waits[index]
        ended.set_result(None)
        return task


async def test_a_late_event_is_waited_for_not_read_from_the_database(cast, monkeypatch):
    """Events of one room published by two server processes often arrive out of order. Each hole
    gets GAP_WAIT_SECONDS to fill before the database is read: here 2 comes before 1 and, while
    that wait runs, 4 before 3. Both holes fill in time, so nothing is read."""
    from core.hub import get_hub
    from messaging import selectors

    waits = GapWaits()
    monkeypatch.setattr(consumers, "asyncio", waits)
    monkeypatch.setattr(consumers, "GAP_WAIT_SECONDS", 1000.0)  # far from any other sleep's delay
    reads = []
    real_changes_page = selectors.changes_page
    monkeypatch.setattr(selectors, "changes_page", lambda **kw: reads.append(kw) or real_changes_page(**kw))
    people = await cast()
    room = str(people["room"].pk)
    member, ready = await connect(people["member"])
    (socket,) = get_hub().groups[f"room.{room}"]
    last = ready["rooms"][room]

    def event(offset: int) -> dict:
        return {"type": "room.sequenced", "room": room, "seq": last + offset, "text": json.dumps({"n": offset})}

    await socket.hub_event(event(2))  # a hole at 1: its wait starts
    await waits.started(1)
    await socket.hub_event(event(1))
    await socket.hub_event(event(4))  # a hole at 3 while the first wait runs
    first = waits.end(0)  # the first wait ends, its hole filled...
    await waits.started(2)  # ...and the hole at 3 gets a wait of its own, not a read
    await socket.hub_event(event(3))
    second = waits.end(1)
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    delivered = []
    while len(delivered) < 4:
        frame = await member.receive_json_from(timeout=TIMEOUT)
        if "n" in frame:  # not a presence update
            delivered.append(frame["n"])
    assert delivered == [1, 2, 3, 4]
    assert reads == [] and len(waits.waits) == 2
    await member.disconnect(timeout=TIMEOUT)


async def test_a_message_sent_while_a_socket_joins_its_rooms_reaches_it_without_waiting_for_the_next(
    make_user, monkeypatch
):
    """A socket reads its rooms' numbers, then joins their groups. A message committed in between
    is published to no socket of this process; the socket must still get it at once, not only
    when the room's next change reveals the hole."""
    ada, bob = await database_sync_to_async(lambda: (make_user("ada"), make_user("bob")))()
    room = await database_sync_to_async(room_with)(ada, members={bob: "member"})
    read_state = consumers.selectors.asession_state

    async def state_then_a_message(*, user_id):
        state = await read_state(user_id=user_id)
        await database_sync_to_async(messaging_services.message_send)(
            user=bob, room_id=room.pk, content="between", client_msg_id=uuid.uuid4()
        )
        return state

    monkeypatch.setattr(consumers.selectors, "asession_state", state_then_a_message)
    socket, ready = await connect(ada)
    try:
        assert ready["rooms"][str(room.pk)] == 0
        frame = await receive_type(socket, "message.new")
        assert (frame["sequence"], frame["message"]["content"]) == (1, "between")
    finally:
        await socket.disconnect()


class DirectSocket:
    """What core.wire reads and writes on a uvicorn socket (an open one), recording the writes."""

    close_sent = disconnected = False

    def __init__(self) -> None:
        self.conn = type("Conn", (), {"state": State.OPEN})()
        self.transport = self
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_relayed_event_is_made_into_a_frame_once_for_all_the_sockets_it_reaches(monkeypatch):
    """Presence, typing, receipts and membership events reach every member's socket with the same
    text: on uvicorn the frame is built once per event, as a numbered change's is."""
    built = []
    text_frame = wire.text_frame
    monkeypatch.setattr(wire, "text_frame", lambda text: built.append(text) or text_frame(text))
    sockets = []
    for user_id in (1, 2, 3):
        socket = consumers.ChatConsumer()
        socket.wire_server, socket.presence_sent = DirectSocket(), {}
        socket.user, socket.cursors = type("User", (), {"pk": user_id})(), {"room-1": None}
        sockets.append(socket)
    presence = {"type": "user.presence", "user": 9, "text": json.dumps({"type": "presence", "user": {"id": 9}})}
    typing = {"type": "room.relay", "room": "room-1", "exclude_user": 1, "text": json.dumps({"type": "typing"})}
    for socket in sockets:
        await socket.user_presence(presence)
        await socket.room_relay(typing)
    assert built == [presence["text"], typing["text"]]
    assert [socket.wire_server.written for socket in sockets] == [
        [text_frame(presence["text"])],  # the typing user's own socket gets no typing frame
        [text_frame(presence["text"]), text_frame(typing["text"])],
        [text_frame(presence["text"]), text_frame(typing["text"])],
    ]
