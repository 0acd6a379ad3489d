"""Mentions and notifications (issue 16; docs/notifications.md): @username and @room parsed on the
server and carried in the message payload; an inbox per user (mentions, @room, replies in one's
threads, direct messages) with unread state, cursor pages, mark read; levels per room (all /
mentions / mute); the `notification` frame on the user's own sockets. Owner, member, viewer and
outsider throughout."""

import json
import uuid

import pytest
from channels.db import database_sync_to_async

from core.events import user_group
from messaging import archive, services
from messaging.mentions import names_in
from messaging.models import Message
from notifications import services as notifications
from notifications import tasks
from notifications.models import Notification, PendingNotification, RoomSetting
from rooms.models import Room
from rooms.services import direct_room_get_or_create
from tests.conftest import client_for, room_with
from tests.conftest import send_message as send
from tests.sockets import TIMEOUT, connect, receive_type

INBOX = "/api/v1/notifications/"


@pytest.fixture
def team(make_user):
    owner, member, viewer, outsider = (make_user(n) for n in ("Olga", "mia", "vic", "otto"))
    room = room_with(owner, "Team", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "member": member, "viewer": viewer, "outsider": outsider}


def items_of(user) -> list[tuple[str, str]]:
    """(kind, message text) of the user's inbox, oldest first."""
    rows = list(Notification.objects.filter(user=user).order_by("id").values_list("kind", "message_id"))
    texts = dict(Message.objects.filter(id__in=[message_id for _, message_id in rows]).values_list("id", "content"))
    return [(kind, texts[message_id]) for kind, message_id in rows]


def sent(room, user, content, capture):
    with capture(execute=True):
        return send(room, user, content)


# -- parsing ----------------------------------------------------------------------------------------


def test_it_finds_usernames_and_room_but_not_emails_code_or_trailing_dots():
    text = "hi @Mia and @mia, @vic. mail otto@example.com `@olga` ```\n@otto\n``` @room @room"
    assert names_in(text) == (["mia", "vic"], True)
    assert names_in("no mention here") == ([], False)
    assert names_in("@ alone, and a@b") == ([], False)


def test_archived_rows_keep_their_mentions():
    """messaging.archive's rows carry the message's mentions (older rows have none)."""
    row = [str(uuid.uuid4()), str(uuid.uuid4()), 5, 6, None, "hi @mia", str(uuid.uuid4())]
    row += ["2026-01-01T00:00:00+00:00", None, None, None, 0, None, None, None, None]
    mentioned = {"users": [{"id": 3, "username": "mia"}], "room": False}
    assert archive._as_message(row + [mentioned]).mentions == mentioned
    assert archive._as_message(row).mentions is None  # an archive written before mentions
    assert json.loads(archive._restorable(row + [mentioned])[16]) == mentioned


# -- mentions in messages -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_carries_the_mentioned_members_in_the_payload_and_notifies_them(team, django_capture_on_commit_callbacks):
    room, owner, member = team["room"], team["owner"], team["member"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(member).post(
            f"/api/v1/rooms/{room.pk}/messages/",
            {"content": "@olga look, @VIC too, not @otto nor @mia", "client_msg_id": str(uuid.uuid4())},
            format="json",
        )
    body = response.json()
    assert response.status_code == 201
    assert body["mentions"] == [
        {"id": owner.pk, "username": "Olga"},
        {"id": member.pk, "username": "mia"},
        {"id": team["viewer"].pk, "username": "vic"},
    ]
    assert body["mentions_room"] is False
    # Named members are notified, the author never, the outsider (not in the room) not at all.
    assert items_of(owner) == [("mention", body["content"])]
    assert items_of(team["viewer"]) == [("mention", body["content"])]
    assert items_of(member) == [] and items_of(team["outsider"]) == []
    # History and sync carry the mentions too.
    page = client_for(owner).get(f"/api/v1/rooms/{room.pk}/messages/").json()["results"]
    assert [m["id"] for m in page[0]["mentions"]] == [owner.pk, member.pk, team["viewer"].pk]


@pytest.mark.django_db
def test_a_mention_adds_no_statement_to_the_send_and_one_after_its_commit(
    team, sql_statements, django_capture_on_commit_callbacks
):
    room, owner = team["room"], team["owner"]
    send(room, owner, "warm")
    request = {"user": owner, "room_id": room.pk, "content": "hey @mia", "client_msg_id": uuid.uuid4()}
    with sql_statements.recording(), django_capture_on_commit_callbacks() as after_commit:
        [(message, created)] = services.message_send_many(requests=[request])
    assert created and [u["username"] for u in message.mentions["users"]] == ["mia"]
    assert sql_statements.labels(send=services._SEND) == ['SAVEPOINT "…"', "send", 'RELEASE SAVEPOINT "…"']
    # Then, once committed, one statement for the batch: the claim, who, the items and unread counts.
    with sql_statements.recording():
        for callback in after_commit:
            callback()
    labels = sql_statements.labels(notify=notifications._NOTIFY)
    labels = [label for label in labels if "SAVEPOINT" not in label]  # its transaction (here a savepoint)
    assert labels == ["notify"], labels
    assert items_of(team["member"]) == [("mention", "hey @mia")]


@pytest.mark.django_db
def test_it_takes_room_from_owners_and_admins_only(team, django_capture_on_commit_callbacks):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    plain = sent(room, member, "hello @room", django_capture_on_commit_callbacks)
    assert plain.mentions is None  # from a member, @room is plain text: nobody is notified
    assert Notification.objects.count() == 0
    announced = sent(room, owner, "hello @room", django_capture_on_commit_callbacks)
    assert announced.mentions == {"users": [], "room": True}
    assert items_of(member) == [("room", "hello @room")] and items_of(viewer) == [("room", "hello @room")]
    assert items_of(owner) == [] and items_of(team["outsider"]) == []


@pytest.mark.django_db
def test_an_edit_notifies_only_those_it_names_for_the_first_time(team, django_capture_on_commit_callbacks):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    message = sent(room, member, "hi @olga", django_capture_on_commit_callbacks)
    for text in ("hi @olga and @vic", "hi @olga and @vic!"):
        with django_capture_on_commit_callbacks(execute=True):
            edited = services.message_edit(user=member, room_id=room.pk, message_id=message.id, content=text)
    assert [u["username"] for u in edited.mentions["users"]] == ["Olga", "vic"]
    assert Notification.objects.filter(user=owner).count() == 1
    assert Notification.objects.filter(user=viewer).count() == 1


@pytest.mark.django_db
def test_replies_notify_the_threads_people_and_a_mention_wins_over_a_reply(
    team, make_user, django_capture_on_commit_callbacks
):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    eve = make_user("eve")
    room.memberships.create(user=eve, role="member")
    root = sent(room, owner, "question", django_capture_on_commit_callbacks)
    for user, text in ((member, "answer"), (eve, "me too @mia")):
        with django_capture_on_commit_callbacks(execute=True):
            services.message_send(
                user=user, room_id=room.pk, content=text, client_msg_id=uuid.uuid4(), reply_to=str(root.id)
            )
    assert items_of(owner) == [("reply", "answer"), ("reply", "me too @mia")]
    assert items_of(member) == [("mention", "me too @mia")]  # in the thread and named: one item
    assert items_of(eve) == [] and items_of(viewer) == []


@pytest.mark.django_db
def test_direct_messages_notify_the_other_person(make_user, django_capture_on_commit_callbacks):
    ana, bob = make_user("ana"), make_user("bob")
    room, _ = direct_room_get_or_create(user=ana, other=bob)
    sent(room, ana, "psst", django_capture_on_commit_callbacks)
    assert items_of(bob) == [("direct", "psst")] and items_of(ana) == []


@pytest.mark.django_db
def test_mute_lets_only_a_mention_by_name_through(team, make_user, django_capture_on_commit_callbacks):
    room, owner, member = team["room"], team["owner"], team["member"]
    api = client_for(member)
    url = f"/api/v1/notifications/rooms/{room.pk}/"
    assert api.get("/api/v1/notifications/rooms/").json()["results"] == [{"room": str(room.pk), "level": "mentions"}]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.put(url, {"level": "mute"}, format="json").json()["level"] == "mute"
    sent(room, owner, "all of you @room", django_capture_on_commit_callbacks)
    sent(room, owner, "you @mia", django_capture_on_commit_callbacks)
    assert items_of(member) == [("mention", "you @mia")]
    # Bad levels, and rooms one may not see, change nothing.
    assert api.put(url, {"level": "loud"}, format="json").json()["error"]["code"] == "invalid"
    hidden = client_for(team["outsider"]).put(url, {"level": "all"}, format="json")
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "not_found")
    assert list(RoomSetting.objects.values_list("user__username", "level")) == [("mia", "mute")]
    levels = api.get("/api/v1/notifications/rooms/").json()["results"]
    assert levels == [{"room": str(room.pk), "level": "mute"}]


# -- the inbox over REST ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_inbox_pages_counts_and_marks_read_and_others_items_are_not_found(
    team, events, django_capture_on_commit_callbacks
):
    room, owner, member = team["room"], team["owner"], team["member"]
    for n in range(3):
        sent(room, owner, f"@mia number {n}", django_capture_on_commit_callbacks)
    api = client_for(member)
    first = api.get(INBOX, {"limit": 2}).json()
    assert [i["message"]["excerpt"] for i in first["results"]] == ["@mia number 2", "@mia number 1"]
    assert first["unread"] == 3 and first["next"] is not None
    second = api.get(INBOX, {"limit": 2, "before": first["next"]}).json()
    assert [i["message"]["excerpt"] for i in second["results"]] == ["@mia number 0"]
    assert second["next"] is None
    item = second["results"][0]
    assert (item["kind"], item["room"]["name"], item["actor"]["username"], item["read"]) == (
        "mention",
        "Team",
        "Olga",
        False,
    )
    assert item["message"]["sequence"] == 1

    # Someone else's item, or a made-up one, is not found; mine is marked read once.
    for other in (client_for(owner), client_for(team["outsider"])):
        refused = other.post(f"{INBOX}{item['id']}/read/")
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    for bad in ("nope", "0", str(2**70)):
        assert api.post(f"{INBOX}{bad}/read/").status_code == 404
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        read = api.post(f"{INBOX}{item['id']}/read/").json()
    assert (read["notification"]["read"], read["unread"]) == (True, 2)
    assert events.frames("notification.read", group=user_group(member.pk)) == [
        {"type": "notification.read", "ids": [item["id"]], "unread": 2}
    ]
    assert api.get(INBOX, {"unread": "true"}).json()["unread"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"{INBOX}read/", {}, format="json").json() == {"marked": 2, "unread": 0}
    assert api.post(f"{INBOX}read/", {}, format="json").json() == {"marked": 0, "unread": 0}
    assert api.get(INBOX, {"before": "x"}).json()["error"]["code"] == "invalid"

    # A deleted message's item stays, without its text; leaving the room hides its items.
    message_id = item["message"]["id"]
    services.message_delete(user=owner, room_id=room.pk, message_id=message_id)
    shown = {i["message"]["id"]: i["message"] for i in api.get(INBOX).json()["results"]}
    assert shown[message_id]["excerpt"] == "" and shown[message_id]["deleted"] is True
    room.memberships.filter(user=member).delete()
    assert api.get(INBOX).json() == {"results": [], "next": None, "unread": 0}
    assert api.post(f"{INBOX}{item['id']}/read/").status_code == 404


# -- durability ------------------------------------------------------------------------------------


def _broken_store(owed):
    raise RuntimeError("PostgreSQL is away")


@pytest.mark.django_db
def test_notifications_the_fast_path_never_delivered_are_delivered_once_by_the_sweeper(
    team, events, monkeypatch, django_capture_on_commit_callbacks
):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    capture = django_capture_on_commit_callbacks
    fast_path, store = notifications._notify, notifications._store
    # The process dies between the commits and the fast path, which never runs: a mention (the
    # batched statement writes the pending row) and a reply (the ORM's path writes it) ...
    monkeypatch.setattr(notifications, "_notify", lambda owed: None)
    mention = sent(room, owner, "ping @mia", capture)
    with capture(execute=True):
        reply, _ = services.message_send(
            user=member, room_id=room.pk, content="on it", client_msg_id=uuid.uuid4(), reply_to=str(mention.id)
        )
    # ... or the fast path fails (its claim rolls back with it): an edit naming someone new.
    monkeypatch.setattr(notifications, "_notify", fast_path)
    monkeypatch.setattr(notifications, "_store", _broken_store)
    with capture(execute=True):
        services.message_edit(user=member, room_id=room.pk, message_id=reply.id, content="on it @vic")
    monkeypatch.setattr(notifications, "_store", store)
    assert Notification.objects.count() == 0 and PendingNotification.objects.count() == 3
    assert notifications.pending_deliver(older_than=3600) == 0  # none is due yet

    events.clear()
    with capture(execute=True):
        assert notifications.pending_deliver(older_than=0) == 3
    assert items_of(member) == [("mention", "ping @mia")]
    assert items_of(owner) == [("reply", "on it @vic")]  # shown as the message is now
    assert items_of(viewer) == [("mention", "on it @vic")]  # named by the reply's text as it is now
    assert PendingNotification.objects.count() == 0
    # Each went out live on its user's own group.
    for user, message in ((member, mention), (owner, reply), (viewer, reply)):
        (frame,) = events.frames("notification", group=user_group(user.pk))
        assert (frame["notification"]["message"]["id"], frame["unread"]) == (str(message.id), 1)

    # Exactly once: a second sweep and a late fast path find nothing owed.
    events.clear()
    with capture(execute=True):
        assert notifications.pending_deliver(older_than=0) == 0
        fast_path([notifications.Owed(mention, mention.sequence), notifications.Owed(reply, reply.sequence)])
    assert Notification.objects.count() == 3 and events.frames("notification") == []


@pytest.mark.django_db
def test_only_messages_that_may_notify_write_a_pending_row_and_the_fast_path_deletes_it(
    team, django_capture_on_commit_callbacks
):
    room, owner = team["room"], team["owner"]
    with django_capture_on_commit_callbacks() as after_commit:
        send(room, owner, "plain, with an address: a@b.c")
        send(room, owner, "hello @nobody")  # not a member: plain text
        mention = send(room, owner, "hello @mia")
    assert list(PendingNotification.objects.values_list("message_id", "number", "edit")) == [
        (mention.id, mention.sequence, False)
    ]
    for callback in after_commit:
        callback()
    assert PendingNotification.objects.count() == 0 and items_of(team["member"]) == [("mention", "hello @mia")]


# -- live on the socket ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_mention_sent_on_the_socket_reaches_the_mentioned_users_socket_as_a_notification(
    team, monkeypatch, settings
):
    people = await database_sync_to_async(lambda: team)()
    room = str(people["room"].pk)
    member, _ = await connect(people["member"])
    owner, _ = await connect(people["owner"])
    key = str(uuid.uuid4())
    await owner.send_json_to({"type": "message.send", "room": room, "content": "ping @mia", "client_msg_id": key})
    ack = await receive_type(owner, "message.ack")
    assert [u["username"] for u in ack["message"]["mentions"]] == ["mia"]
    new = await receive_type(member, "message.new")
    assert new["message"]["mentions"] == ack["message"]["mentions"]
    frame = await receive_type(member, "notification")
    assert frame["unread"] == 1
    notification = frame["notification"]
    assert (notification["kind"], notification["message"]["id"], notification["actor"]["username"]) == (
        "mention",
        ack["message"]["id"],
        "Olga",
    )
    # The hint names the item the inbox holds (the truth, over REST).
    inbox = await database_sync_to_async(client_for(people["member"]).get)(INBOX)
    assert [i["id"] for i in inbox.json()["results"]] == [notification["id"]]
    # A reply on the socket (the thread path, notified after its ack): the thread's root author hears.
    reply = {"type": "message.send", "room": room, "content": "on it", "client_msg_id": str(uuid.uuid4())}
    await member.send_json_to(reply | {"reply_to": ack["message"]["id"]})
    replied = await receive_type(member, "message.ack")
    frame = await receive_type(owner, "notification")
    assert (frame["notification"]["kind"], frame["notification"]["message"]["id"], frame["unread"]) == (
        "reply",
        replied["message"]["id"],
        1,
    )

    # The process dies after the socket's send committed, before its notification task: the sweeper
    # (the Celery beat task) delivers it, and the frame still reaches the mentioned user's socket.
    async def dead(owed):
        return None

    monkeypatch.setattr(notifications, "_anotify", dead)
    again = {"type": "message.send", "room": room, "content": "again @mia", "client_msg_id": str(uuid.uuid4())}
    await owner.send_json_to(again)
    ack = await receive_type(owner, "message.ack")
    assert await database_sync_to_async(PendingNotification.objects.count)() == 1
    monkeypatch.undo()
    settings.NOTIFICATION_SWEEP_AFTER_SECONDS = 0
    assert await database_sync_to_async(tasks.deliver_pending)() == 1
    frame = await receive_type(member, "notification")
    assert (frame["notification"]["message"]["id"], frame["unread"]) == (ack["message"]["id"], 2)
    await member.disconnect(timeout=TIMEOUT)
    await owner.disconnect(timeout=TIMEOUT)
