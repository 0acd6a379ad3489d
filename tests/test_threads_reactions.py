"""Threads (replies) and reactions (issue 16): numbered changes of the room's one sequence, so live
events, sync and gap-fill carry them exactly like edits; idempotent; validated; access per
rooms.access (viewers react but do not reply; outsiders get not_found)."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import connection, connections, transaction

from core import asyncdb
from core.errors import ApplicationError
from messaging import archive, consumers, services
from messaging.emoji import QUICK, clean_emoji, is_single_emoji
from messaging.models import Message, SentMessageKey
from messaging.payloads import change_frame, message_payload
from rooms.models import Room
from tests.conftest import client_for, lock_waiters, nothing_but_presence, room_held, room_with, wait_until
from tests.conftest import send_message as send
from tests.sockets import TIMEOUT, connect, receive_type
from tests.test_archive import OLDER, age, make_partition, s3, s3_server  # noqa: F401 (fixtures)


@pytest.fixture
def team(make_user):
    owner, member, viewer, outsider = (make_user(n) for n in ("owner", "member", "viewer", "outsider"))
    room = room_with(owner, "Team", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "member": member, "viewer": viewer, "outsider": outsider}


def reply(room, user, parent, content: str = "re", key: uuid.UUID | None = None) -> tuple[Message, bool]:
    return services.message_send(
        user=user, room_id=room.pk, content=content, client_msg_id=key or uuid.uuid4(), reply_to=str(parent.id)
    )


def react(room, user, message, emoji: str, present: bool = True) -> Message:
    return services.reaction_set(user=user, room_id=room.pk, message_id=message.id, emoji=emoji, present=present)


def changes(room, user, after: int) -> list[dict]:
    body = client_for(user).get(f"/api/v1/rooms/{room.pk}/changes/", {"after_sequence": after}).json()
    return body["results"]


def last_sequence(room) -> int:
    return Room.objects.values_list("last_sequence", flat=True).get(pk=room.pk)


def error_of(call) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value


# -- threads ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reply_takes_a_number_and_its_root_the_next_and_sync_carries_both(team):
    room, owner, member = team["room"], team["owner"], team["member"]
    root = send(room, owner, "question")
    answer, created = reply(room, member, root, "answer")

    assert created and (answer.sequence, answer.reply_to) == (2, root.id)
    assert last_sequence(room) == 3
    events = changes(room, owner, after=1)
    assert [(e["type"], e["sequence"], e["message"]["id"]) for e in events] == [
        ("message.new", 2, str(answer.id)),
        ("message.update", 3, str(root.id)),
    ]
    new, update = events[0]["message"], events[1]["message"]
    assert (new["reply_to"], new["reply_count"]) == (str(root.id), 0)
    assert (update["reply_to"], update["reply_count"], update["sequence"]) == (None, 1, 1)
    assert update["last_reply_at"] == new["created_at"] and update["changed_sequence"] == 3
    # History carries the thread ids too.
    page = client_for(owner).get(f"/api/v1/rooms/{room.pk}/messages/").json()["results"]
    assert [(m["sequence"], m["reply_to"], m["reply_count"]) for m in page] == [(2, str(root.id), 0), (1, None, 1)]


@pytest.mark.django_db
def test_a_reply_to_a_reply_joins_the_roots_thread_and_the_thread_pages(team):
    room, owner, member = team["room"], team["owner"], team["member"]
    root = send(room, owner, "root")
    first, _ = reply(room, member, root, "one")
    send(room, owner, "unrelated")
    second, _ = reply(room, owner, first, "two")  # to a reply: the root's thread
    third, _ = reply(room, member, root, "three")

    assert second.reply_to == root.id
    assert Message.objects.get(id=root.id).reply_count == 3
    api = client_for(team["viewer"])
    url = f"/api/v1/rooms/{room.pk}/messages/{first.id}/thread/"  # any message of the thread names it
    newest = api.get(url, {"limit": 2}).json()
    assert newest["root"]["id"] == str(root.id) and newest["root"]["reply_count"] == 3
    assert ([m["content"] for m in newest["results"]], newest["has_more"]) == (["three", "two"], True)
    older = api.get(url, {"before_sequence": newest["results"][-1]["sequence"]}).json()
    assert ([m["content"] for m in older["results"]], older["has_more"]) == (["one"], False)
    forward = api.get(url, {"after_sequence": 0}).json()
    assert [m["content"] for m in forward["results"]] == ["one", "two", "three"]
    assert api.get(url, {"limit": 0}).json()["error"]["code"] == "invalid"


@pytest.mark.django_db
def test_resending_a_reply_returns_the_original_and_takes_no_number(team):
    room, owner = team["room"], team["owner"]
    root = send(room, owner, "root")
    key = uuid.uuid4()
    original, _ = reply(room, owner, root, "once", key=key)
    again, created = reply(room, owner, root, "once", key=key)
    assert not created and again.id == original.id and again.reply_to == root.id
    assert last_sequence(room) == 3 and Message.objects.get(id=root.id).reply_count == 1
    # Over REST: 201 then 200 with the same message.
    body = {"content": "rest", "client_msg_id": str(uuid.uuid4()), "reply_to": str(root.id)}
    api = client_for(owner)
    first = api.post(f"/api/v1/rooms/{room.pk}/messages/", body, format="json")
    second = api.post(f"/api/v1/rooms/{room.pk}/messages/", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"] and first.json()["reply_to"] == str(root.id)
    assert last_sequence(room) == 5


@pytest.mark.django_db
def test_bad_replies_are_refused_with_stable_codes_and_change_nothing(team):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    root = send(room, owner, "root")
    gone = send(room, owner, "gone")
    services.message_delete(user=owner, room_id=room.pk, message_id=gone.id)
    before = (last_sequence(room), Message.objects.count(), SentMessageKey.objects.count())

    def code(user, parent_id, **extra) -> str:
        return error_of(
            lambda: services.message_send(
                user=user, room_id=room.pk, content="re", client_msg_id=uuid.uuid4(), reply_to=parent_id, **extra
            )
        ).code

    assert code(member, str(gone.id)) == "deleted"
    assert code(member, str(uuid.uuid4())) == "not_found"
    assert code(member, "not-a-uuid") == "invalid"
    assert code(member, 7) == "invalid"
    assert code(viewer, str(root.id)) == "forbidden"
    assert code(team["outsider"], str(root.id)) == "not_found"
    other_room = room_with(team["outsider"], "Other")
    elsewhere = send(other_room, team["outsider"], "elsewhere")
    assert code(member, str(elsewhere.id)) == "not_found"  # a message of another room
    assert (last_sequence(room), Message.objects.count() - 1, SentMessageKey.objects.count() - 1) == before
    response = client_for(member).post(
        f"/api/v1/rooms/{room.pk}/messages/",
        {"content": "re", "client_msg_id": str(uuid.uuid4()), "reply_to": "nope"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


@pytest.mark.django_db
def test_deleting_a_reply_counts_it_out_as_a_numbered_change_of_the_root(team):
    room, owner, member = team["room"], team["owner"], team["member"]
    root = send(room, owner, "root")
    answer, _ = reply(room, member, root, "answer")  # 2, root 3
    services.message_delete(user=member, room_id=room.pk, message_id=answer.id)  # 4, root 5
    services.message_delete(user=member, room_id=room.pk, message_id=answer.id)  # nothing

    assert last_sequence(room) == 5
    events = changes(room, owner, after=3)
    assert [(e["type"], e["sequence"]) for e in events] == [("message.delete", 4), ("message.update", 5)]
    assert events[1]["message"]["reply_count"] == 0
    # A deleted root keeps its replies readable, and its thread takes no new ones.
    kept, _ = reply(room, member, root, "kept")
    services.message_delete(user=owner, room_id=room.pk, message_id=root.id)
    thread = client_for(member).get(f"/api/v1/rooms/{room.pk}/messages/{root.id}/thread/").json()
    assert thread["root"]["deleted"] and thread["root"]["reply_count"] == 1
    assert [m["id"] for m in thread["results"]] == [str(kept.id), str(answer.id)]
    assert thread["results"][1]["deleted"]


# -- reactions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "emoji",
    ["👍", "❤️", "🫠", "👍🏽", "🇫🇷", "1️⃣", "#⃣", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "©️", "✅", *QUICK],
)
def test_single_emoji_are_reactions(emoji):
    assert is_single_emoji(emoji) and clean_emoji(emoji)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a",
        "ok",
        "👍👍",
        "👍 ",
        " 👍",
        "🇫",
        "🇫🇷🇫",
        "1",
        "\u200d",
        "👍\u200d",
        "\u0007",
        "\u202e👍",
        "👍\u0301",
        "🏽",
        "\ufe0f",
        "e\u0301",
        "😀a",
        "👍\n",
        None,
        7,
        ["👍"],
    ],
)
def test_text_several_graphemes_and_control_characters_are_not(value):
    assert not (isinstance(value, str) and is_single_emoji(value))
    with pytest.raises(ApplicationError) as caught:
        clean_emoji(value)
    assert caught.value.code == "invalid_emoji" and caught.value.status == 400


def test_a_quick_emoji_without_its_variation_selector_is_the_quick_one():
    assert clean_emoji("\u2764") == "❤️" and clean_emoji("❤️") == "❤️"


@pytest.mark.django_db
def test_reactions_are_numbered_aggregated_and_idempotent(team, django_capture_on_commit_callbacks, events):
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    message = send(room, owner, "ship it?")
    with django_capture_on_commit_callbacks(execute=True):
        react(room, member, message, "👍")  # 2
        react(room, member, message, "👍")  # nothing: already there
        react(room, viewer, message, "👍")  # 3: viewers react
        react(room, owner, message, "🎉")  # 4
        react(room, owner, message, "👍", present=False)  # nothing: owner had no 👍
        react(room, owner, message, "🎉", present=False)  # 5
        latest = react(room, owner, message, "\u2764")  # 6, stored as the quick set's ❤️

    assert last_sequence(room) == 6
    payload = message_payload(latest)
    assert payload["reactions"] == [
        {
            "emoji": "👍",
            "count": 2,
            "users": [{"id": member.pk, "username": "member"}, {"id": viewer.pk, "username": "viewer"}],
        },
        {"emoji": "❤️", "count": 1, "users": [{"id": owner.pk, "username": "owner"}]},
    ]
    frames = [f for f in events.frames(group=f"room.{room.pk}") if f["type"].startswith("message.")]
    assert [(f["type"], f["sequence"]) for f in frames] == [("message.update", n) for n in (2, 3, 4, 5, 6)]
    assert frames[-1]["message"] == payload
    # Sync has the message once, in its latest state; an edit afterwards is an edit again.
    assert [e["message"]["reactions"] for e in changes(room, owner, after=0)] == [payload["reactions"]]
    edited = services.message_edit(user=owner, room_id=room.pk, message_id=message.id, content="shipped")
    assert change_frame(edited)["type"] == "message.edit" and len(message_payload(edited)["reactions"]) == 2


@pytest.mark.django_db
def test_bad_reactions_are_refused_and_change_nothing(team):
    room, owner, member = team["room"], team["owner"], team["member"]
    message = send(room, owner, "hello")
    gone = send(room, owner, "gone")
    services.message_delete(user=owner, room_id=room.pk, message_id=gone.id)
    before = (last_sequence(room), list(Message.objects.values_list("id", "reactions", "changed_sequence")))

    assert error_of(lambda: react(room, member, message, "lol")).code == "invalid_emoji"
    assert error_of(lambda: react(room, member, gone, "👍")).code == "deleted"
    assert error_of(lambda: react(room, team["outsider"], message, "👍")).code == "not_found"
    assert (
        error_of(
            lambda: services.reaction_set(user=member, room_id=room.pk, message_id="x", emoji="👍", present=True)
        ).code
        == "not_found"
    )
    for emoji in [
        "😀",
        "😁",
        "😂",
        "🤣",
        "😃",
        "😄",
        "😅",
        "😆",
        "😉",
        "😊",
        "😋",
        "😎",
        "😍",
        "😘",
        "🥰",
        "😗",
        "😙",
        "🥲",
        "😚",
        "🙂",
    ]:
        react(room, owner, message, emoji)
    limit = error_of(lambda: react(room, member, message, "🤔"))
    assert (limit.code, limit.status) == ("too_many_reactions", 409)
    react(room, member, message, "😀")  # an existing one still takes more people
    assert last_sequence(room) == before[0] + 21
    api = client_for(member)
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/reactions/"
    response = api.post(url, {"emoji": "two words"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_emoji"
    assert response.json()["error"]["fields"] == {"emoji": ["Must be a single emoji."]}
    assert api.delete(url).json()["error"]["code"] == "invalid_emoji"  # no ?emoji=


@pytest.mark.django_db(transaction=True)
def test_reactions_racing_on_one_message_are_all_kept_with_one_number_each(team):
    """Reactions of several people to one message, all waiting for the room while someone holds
    it: each is applied to the message as the one before left it (none overwrites another), each
    takes the next number, and the ones that change nothing take none."""
    room, owner, member, viewer = team["room"], team["owner"], team["member"], team["viewer"]
    message = send(room, owner, "vote")
    react(room, owner, message, "👍")
    before = last_sequence(room)
    racers = [
        (member, "👍", True),
        (viewer, "👍", True),
        (member, "🎉", True),
        (owner, "👍", False),
        (viewer, "👎", False),
    ]

    def race(user, emoji, present):
        try:
            return react(room, user, message, emoji, present)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(racers)) as pool:
        with transaction.atomic():
            Room.objects.select_for_update().get(pk=room.pk)
            futures = [pool.submit(race, *racer) for racer in racers]
            # A reaction that changes nothing may answer without the lock.
            wait_until(
                lambda: lock_waiters() + sum(f.done() for f in futures) == len(racers),
                what="every reaction queuing on the room's lock",
            )
        results = [future.result() for future in futures]

    stored = Message.objects.get(pk=message.pk)
    assert {r["emoji"]: sorted(u["id"] for u in r["users"]) for r in stored.reactions} == {
        "👍": sorted([member.pk, viewer.pk]),
        "🎉": [member.pk],
    }
    # Four changes (the viewer's removal of a 👎 they never gave changes nothing): four numbers.
    assert last_sequence(room) == before + 4 == stored.changed_sequence
    assert sorted(r.changed_sequence for r in results[:4]) == list(range(before + 1, before + 5))


@pytest.fixture
def transactions(monkeypatch) -> list[int]:
    """The number of statements of each core.asyncdb.transaction run (a reaction batch: its rooms'
    locks, then its reactions)."""
    counts: list[int] = []
    run = asyncdb.transaction

    async def counting(steps, **kwargs):
        counts.append(len(steps))
        return await run(steps, **kwargs)

    monkeypatch.setattr(asyncdb, "transaction", counting)
    return counts


def batch_outcome(result) -> object:
    return result.code if isinstance(result, ApplicationError) else result.changed_sequence


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_reactions_gives_each_its_own_result_and_number_in_one_transaction(team, events, transactions):
    """The socket's reactions go in batches (areaction_set_many): one transaction, each reaction
    applied as the ones before it left the message, each change numbered in turn, each request
    answered as reaction_set would have; the changes announced once each, after the commit."""
    room, owner, member, viewer, outsider = (team[k] for k in ("room", "owner", "member", "viewer", "outsider"))
    message, other = send(room, owner, "vote"), send(room, owner, "other")

    def ask(user, target, emoji, present=True) -> dict:
        return {"user": user, "room_id": room.pk, "message_id": target.id, "emoji": emoji, "present": present}

    requests = [
        ask(member, message, "👍"),  # 3
        ask(viewer, message, "👍"),  # 4: the same message, after the first
        ask(member, message, "👍"),  # already there: no number
        ask(owner, other, "🎉"),  # 5
        ask(owner, message, "👍", present=False),  # never given: no number
        ask(member, message, "two words"),  # refused before the database
        ask(outsider, message, "👍"),  # cannot see the room
        ask(member, Message(id=uuid.uuid4()), "👍"),  # no such message
        ask(owner, message, "🎉"),  # 6
    ]
    results = async_to_sync(services.areaction_set_many)(requests=requests)

    assert [batch_outcome(r) for r in results] == [3, 4, 4, 5, 4, "invalid_emoji", "not_found", "not_found", 6]
    assert transactions == [1 + 8]  # the rooms' locks, then the eight that reached the database
    assert last_sequence(room) == 6
    stored = Message.objects.get(pk=message.pk)
    assert [(r["emoji"], [u["id"] for u in r["users"]]) for r in stored.reactions] == [
        ("👍", [member.pk, viewer.pk]),
        ("🎉", [owner.pk]),
    ]
    frames = [f for f in events.frames(group=f"room.{room.pk}") if f["type"] == "message.update"]
    assert [(f["sequence"], f["message"]["id"]) for f in frames] == [
        (3, str(message.id)),
        (4, str(message.id)),
        (5, str(other.id)),
        (6, str(message.id)),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_reaction_that_fails_its_batch_fails_only_itself(team, events, caplog):
    """A database error in one reaction's statement rolls the batch's transaction back whole; each
    then goes again alone, so only that one fails (internal), and nothing is numbered twice."""
    room, owner, member = team["room"], team["owner"], team["member"]
    good, bad = send(room, owner, "good"), send(room, owner, "bad")
    Message.objects.filter(pk=bad.pk).update(reactions={"not": "a list"})  # jsonb_array_elements fails on it
    requests = [
        {"user": member, "room_id": room.pk, "message_id": m.id, "emoji": "👍", "present": True}
        for m in (good, bad, good)
    ]
    results = async_to_sync(services.areaction_set_many)(requests=requests)

    assert [batch_outcome(r) for r in results] == [3, "internal", 3]
    assert last_sequence(room) == 3
    assert Message.objects.get(pk=good.pk).reactions[0]["users"] == [{"id": member.pk, "username": "member"}]
    assert [f["sequence"] for f in events.frames(group=f"room.{room.pk}") if f["type"] == "message.update"] == [3]
    assert "a batch of 3 reactions failed" in caplog.text


def sent_outcome(result) -> object:
    return result.code if isinstance(result, ApplicationError) else (result[0].sequence, result[1])


@pytest.mark.django_db(transaction=True)
def test_sends_and_reactions_of_one_batch_share_one_transaction(team, events, transactions):
    """The socket's writes go in one batch (messaging.consumers.write_batches): reactions that come
    with sends commit in the sends' transaction (the rooms' locks, the sends, then each reaction),
    each answered as alone; the numbers follow that order and the changes go out once each, in it."""
    room, owner, member, outsider = (team[k] for k in ("room", "owner", "member", "outsider"))
    lobby = room_with(outsider, "Lobby", Room.Kind.PUBLIC, members={member: "member"})
    root, elsewhere = send(room, owner, "question"), send(lobby, outsider, "hi")
    events.clear()

    def message(user, target, content, reply_to=None) -> dict:
        request = {"user": user, "room_id": target.pk, "content": content, "client_msg_id": uuid.uuid4()}
        return request | ({"reply_to": str(reply_to.id)} if reply_to else {})

    def reaction(user, target, emoji, present=True) -> dict:
        return {"user": user, "room_id": target.room_id, "message_id": target.id, "emoji": emoji, "present": present}

    sent, reacted = async_to_sync(services.awrite_many)(
        sends=[
            message(member, room, "answer", reply_to=root),  # 2, and its root 3
            message(outsider, room, "let me in"),  # not a member: not_found
            message(member, lobby, "hello lobby"),  # lobby's 2
        ],
        reactions=[
            reaction(member, root, "👍"),  # 4: after the sends, seeing the reply's count
            reaction(outsider, root, "👍"),  # not_found
            reaction(member, elsewhere, "🎉"),  # lobby's 3
            reaction(member, root, "🎉", present=False),  # never given: no number, the message as it is
        ],
    )

    assert [sent_outcome(r) for r in sent] == [(2, True), "not_found", (2, True)]
    assert [batch_outcome(r) for r in reacted] == [4, "not_found", 3, 4]
    assert transactions == [1 + 1 + 4]  # the rooms' locks, the sends, the four reactions
    assert (last_sequence(room), last_sequence(lobby)) == (4, 3)
    stored = Message.objects.get(pk=root.pk)
    assert (stored.reply_count, stored.reactions[0]["emoji"], stored.changed_sequence) == (1, "👍", 4)
    frames = [(f["type"], f["sequence"]) for f in events.frames(group=f"room.{room.pk}")]
    assert frames == [("message.new", 2), ("message.update", 3), ("message.update", 4)]
    assert [(f["type"], f["sequence"]) for f in events.frames(group=f"room.{lobby.pk}")] == [
        ("message.new", 2),
        ("message.update", 3),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_reaction_that_fails_the_shared_transaction_fails_only_itself(team, events, caplog):
    """A database error in a reaction's statement rolls back the batch's one transaction, sends
    included; the sends then go as a batch of their own and the reactions alone, so only the bad
    reaction fails (internal), and nothing is lost or numbered twice."""
    room, owner, member = team["room"], team["owner"], team["member"]
    good, bad = send(room, owner, "good"), send(room, owner, "bad")
    Message.objects.filter(pk=bad.pk).update(reactions={"not": "a list"})  # jsonb_array_elements fails on it
    events.clear()
    key = uuid.uuid4()
    sends = [{"user": member, "room_id": room.pk, "content": "still here", "client_msg_id": key}]
    reactions = [
        {"user": member, "room_id": room.pk, "message_id": m.id, "emoji": "👍", "present": True} for m in (good, bad)
    ]
    sent, reacted = async_to_sync(services.awrite_many)(sends=sends, reactions=reactions)

    assert [sent_outcome(r) for r in sent] == [(3, True)]
    assert [batch_outcome(r) for r in reacted] == [4, "internal"]
    assert last_sequence(room) == 4
    assert list(Message.objects.filter(room=room, client_msg_id=key).values_list("sequence", flat=True)) == [3]
    numbers = [f["sequence"] for f in events.frames(group=f"room.{room.pk}") if f["type"].startswith("message.")]
    assert numbers == [3, 4]
    assert "a batch of 2 reactions failed" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["rest", "socket"])
def test_a_reaction_that_waited_for_its_room_sees_what_the_writer_before_it_did(team, path):
    """A member's 👍 is taken away (from another tab, say) while their new 👍 waits for the room:
    the new one is added again and numbered, not judged "already there" on the message as it was
    before the wait (the room's lock comes before the reaction's statement and its snapshot)."""
    room, owner, member = team["room"], team["owner"], team["member"]
    message = send(room, owner, "vote")
    react(room, member, message, "👍")  # 2

    def racer() -> Message:
        try:
            if path == "rest":
                return react(room, member, message, "👍")
            request = {"user": member, "room_id": room.pk, "message_id": message.id, "emoji": "👍", "present": True}
            (result,) = async_to_sync(services.areaction_set_many)(requests=[request])
            assert isinstance(result, Message), result
            return result
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        with transaction.atomic():
            Room.objects.select_for_update().get(pk=room.pk)
            future = pool.submit(racer)
            wait_until(lambda: lock_waiters() == 1, what="the new 👍 waiting for the room")
            react(room, member, message, "👍", present=False)  # 3, committed while it waits
        result = future.result()

    assert result.changed_sequence == 4 == last_sequence(room)
    assert Message.objects.get(pk=message.pk).reactions == [
        {"emoji": "👍", "users": [{"id": member.pk, "username": "member"}]}
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["rest", "socket"])
def test_a_reaction_nobody_may_give_does_not_wait_for_the_room(team, path):
    """Reactions take their room's lock before their statement, but only in rooms the reacting
    user is a member of: an outsider's is refused at once, not after the room's writers."""
    room, owner, outsider = team["room"], team["owner"], team["outsider"]
    message = send(room, owner, "hello")

    def outsiders() -> str:
        try:
            if path == "rest":
                return error_of(lambda: react(room, outsider, message, "👍")).code
            request = {"user": outsider, "room_id": room.pk, "message_id": message.id, "emoji": "👍", "present": True}
            (result,) = async_to_sync(services.areaction_set_many)(requests=[request])
            return result.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool, transaction.atomic():
        Room.objects.select_for_update().get(pk=room.pk)  # a writer holding the room
        assert pool.submit(outsiders).result(timeout=TIMEOUT) == "not_found"


@pytest.mark.django_db
def test_reactions_over_rest(team):
    room, owner, viewer = team["room"], team["owner"], team["viewer"]
    message = send(room, owner, "hello")
    api = client_for(viewer)
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/reactions/"
    added = api.post(url, {"emoji": "👀"}, format="json")
    assert added.status_code == 200
    assert added.json()["reactions"] == [
        {"emoji": "👀", "count": 1, "users": [{"id": viewer.pk, "username": "viewer"}]}
    ]
    assert api.post(url, {"emoji": "👀"}, format="json").json()["changed_sequence"] == 2  # no new number
    removed = api.delete(f"{url}?emoji=%F0%9F%91%80")
    assert (removed.status_code, removed.json()["reactions"], removed.json()["changed_sequence"]) == (200, [], 3)
    assert api.delete(f"{url}?emoji=%F0%9F%91%80").json()["changed_sequence"] == 3
    outsider = client_for(team["outsider"]).post(url, {"emoji": "👀"}, format="json")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (404, "not_found")
    thread = client_for(team["outsider"]).get(f"/api/v1/rooms/{room.pk}/messages/{message.id}/thread/")
    assert (thread.status_code, thread.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_resending_a_reacted_message_replays_it_with_its_reactions_over_rest_and_the_socket(team):
    people = await database_sync_to_async(lambda: team)()
    room, owner = people["room"], people["owner"]
    key = str(uuid.uuid4())
    body = {"content": "hello", "client_msg_id": key}
    api = client_for(owner)
    first = await database_sync_to_async(api.post)(f"/api/v1/rooms/{room.pk}/messages/", body, format="json")
    message = Message(id=first.json()["id"])
    await database_sync_to_async(react)(room, people["member"], message, "👀")
    again = await database_sync_to_async(api.post)(f"/api/v1/rooms/{room.pk}/messages/", body, format="json")
    assert again.status_code == 200 and again.json()["reactions"][0]["emoji"] == "👀"
    socket, _ = await connect(owner)
    await socket.send_json_to({"type": "message.send", "room": str(room.pk), **body})
    ack = await receive_type(socket, "message.ack")
    assert ack["message"]["reactions"] == again.json()["reactions"]
    assert ack["message"]["changed_sequence"] == 2
    await socket.disconnect(timeout=TIMEOUT)


# -- the socket -------------------------------------------------------------------------------------


async def until(socket, frame_type: str, **fields) -> dict:
    """The next frame of this type whose top-level fields match, skipping the others."""
    while True:
        frame = await receive_type(socket, frame_type)
        if all(frame.get(name) == value for name, value in fields.items()):
            return frame


def send_frame(room: str, content: str, reply_to: str | None = None) -> dict:
    frame = {"type": "message.send", "room": room, "content": content, "client_msg_id": str(uuid.uuid4())}
    return frame | ({"reply_to": reply_to} if reply_to else {})


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_replies_and_reactions_arrive_numbered_and_sync_after_a_cut_returns_them(team):
    people = await database_sync_to_async(lambda: team)()
    room = str(people["room"].pk)
    member, _ = await connect(people["member"])
    viewer, _ = await connect(people["viewer"])
    await member.send_json_to(send_frame(room, "root"))
    root = (await receive_type(member, "message.ack"))["message"]

    frame = send_frame(room, "re", root["id"])
    await member.send_json_to(frame)
    ack = await until(member, "message.ack", client_msg_id=frame["client_msg_id"])
    assert ack["message"]["reply_to"] == root["id"]
    new = await until(viewer, "message.new", sequence=2)
    update = await receive_type(viewer, "message.update")
    assert new["message"]["reply_to"] == root["id"]
    assert (update["sequence"], update["message"]["id"], update["message"]["reply_count"]) == (3, root["id"], 1)

    # The viewer reacts (viewers may), twice: one change.
    for _ in range(2):
        await viewer.send_json_to({"type": "reaction.add", "room": room, "id": root["id"], "emoji": "🎉"})
        reacted = await receive_type(viewer, "reaction.ack")
        assert reacted["message"]["reactions"][0]["count"] == 1
    live = await until(member, "message.update", sequence=4)
    assert live["message"]["reactions"][0]["emoji"] == "🎉"
    # A bad emoji, and a viewer's reply: refused.
    await viewer.send_json_to({"type": "reaction.add", "room": room, "id": root["id"], "emoji": "ab"})
    bad = await receive_type(viewer, "error")
    assert (bad["code"], bad["ref"], list(bad["fields"])) == ("invalid_emoji", root["id"], ["emoji"])
    await viewer.send_json_to(send_frame(room, "x", root["id"]))
    assert (await receive_type(viewer, "error"))["code"] == "forbidden"
    # Removing a reaction one has not: acked, nothing announced.
    await member.send_json_to({"type": "reaction.remove", "room": room, "id": root["id"], "emoji": "🎉"})
    assert (await receive_type(member, "reaction.ack"))["message"]["changed_sequence"] == 4
    assert await nothing_but_presence(member)
    await viewer.disconnect(timeout=TIMEOUT)

    # The viewer is cut off; meanwhile a reply to the reply (5, root 6) and the reaction's removal (7).
    await member.send_json_to(send_frame(room, "re2", new["message"]["id"]))
    await receive_type(member, "message.ack")
    await database_sync_to_async(react)(people["room"], people["viewer"], Message(id=root["id"]), "🎉", False)
    viewer, ready = await connect(people["viewer"])
    assert ready["rooms"][room] == 7
    await viewer.send_json_to({"type": "sync", "room": room, "after_sequence": 3})
    batch = await receive_type(viewer, "sync.batch")
    assert [(e["type"], e["sequence"]) for e in batch["events"]] == [("message.new", 5), ("message.update", 7)]
    latest_root = batch["events"][1]["message"]
    assert (latest_root["id"], latest_root["reply_count"], latest_root["reactions"]) == (root["id"], 2, [])
    assert batch["events"][0]["message"]["reply_to"] == root["id"]  # a reply to a reply is in the root's thread
    await member.disconnect(timeout=TIMEOUT)
    await viewer.disconnect(timeout=TIMEOUT)


def reaction_frame(room: str, message: dict, emoji: str) -> dict:
    return {"type": "reaction.add", "room": room, "id": message["id"], "emoji": emoji}


async def behind_a_waiting_reaction(team, monkeypatch, frames) -> tuple[list, list]:
    """Three sockets (owner, member, viewer). The owner's 👍 on a new message waits for the room,
    held meanwhile; the member and the viewer then send `frames(room, message)`, which queue
    behind it. Returns the sockets and the queued requests, once the room is free again."""
    people = await database_sync_to_async(lambda: team)()
    room = str(people["room"].pk)
    sockets = [(await connect(people[name]))[0] for name in ("owner", "member", "viewer")]
    await sockets[0].send_json_to(send_frame(room, "vote"))
    message = (await receive_type(sockets[0], "message.ack"))["message"]
    async with room_held(room) as holder:
        await sockets[0].send_json_to(reaction_frame(room, message, "👍"))  # alone, waiting for the lock
        await database_sync_to_async(wait_until)(lambda: lock_waiters() == 1, what="the first reaction waiting")
        batches, queued = consumers.write_batches(), asyncio.Event()
        put = batches.put

        def queue(request):
            future = put(request)
            if len(batches.waiting) == 2:
                queued.set()  # both queued behind the first
            return future

        monkeypatch.setattr(batches, "put", queue)
        for socket, frame in zip(sockets[1:], frames(room, message), strict=True):
            await socket.send_json_to(frame)
        async with asyncio.timeout(TIMEOUT):
            await queued.wait()
        waiting = [request for request, _ in batches.waiting]
        await holder.commit()  # the room is free
    return sockets, waiting


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_reactions_waiting_for_a_locked_room_queue_as_one_batch(team, transactions, monkeypatch):
    """A reaction waiting for its room's lock (a send batch holding it) holds the process's
    reactions up; those that arrive meanwhile then go together, in one transaction, not one at a
    time behind each other's waits."""
    sockets, waiting = await behind_a_waiting_reaction(
        team, monkeypatch, lambda room, message: [reaction_frame(room, message, e) for e in ("👍", "🎉")]
    )

    assert [kind for kind, _ in waiting] == ["react", "react"]
    acks = [(await receive_type(socket, "reaction.ack"))["message"] for socket in sockets]
    assert acks[0]["changed_sequence"] == 2
    assert sorted(ack["changed_sequence"] for ack in acks[1:]) == [3, 4]
    assert transactions == [1 + 1, 1 + 2]  # the first alone, then the two together
    assert [(r["emoji"], r["count"]) for r in max(acks, key=lambda ack: ack["changed_sequence"])["reactions"]] == [
        ("👍", 2),
        ("🎉", 1),
    ]
    for socket in sockets:
        await socket.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_send_and_a_reaction_queued_together_commit_together(team, transactions, monkeypatch):
    """A send and a reaction from two sockets that queue behind a waiting batch go in the next
    batch together: one transaction (the rooms' locks, the send, the reaction), each acked."""
    sockets, waiting = await behind_a_waiting_reaction(
        team, monkeypatch, lambda room, message: [send_frame(room, "me too"), reaction_frame(room, message, "🎉")]
    )

    assert [kind for kind, _ in waiting] == ["send", "react"]
    assert (await receive_type(sockets[0], "reaction.ack"))["message"]["changed_sequence"] == 2
    assert (await receive_type(sockets[1], "message.ack"))["message"]["sequence"] == 3
    reacted = (await receive_type(sockets[2], "reaction.ack"))["message"]
    assert reacted["changed_sequence"] == 4
    assert [(r["emoji"], r["count"]) for r in reacted["reactions"]] == [("👍", 1), ("🎉", 1)]
    assert transactions == [1 + 1, 1 + 1 + 1]  # the first alone, then the send and the reaction together
    for socket in sockets:
        await socket.disconnect(timeout=TIMEOUT)


# -- archived days ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("s3")
def test_a_thread_in_an_archived_day_reads_back_whole_and_takes_no_new_replies_or_reactions(team):
    room, owner, member = team["room"], team["owner"], team["member"]
    make_partition(OLDER)
    try:
        root = send(room, owner, "old question")
        answer, _ = reply(room, member, root, "old answer")
        react(room, member, root, "🎉")
        age([room.pk], 10)
        fresh = send(room, owner, "today")
        before = client_for(owner).get(f"/api/v1/rooms/{room.pk}/messages/{answer.id}/thread/").json()
        assert error_of(lambda: reply(room, member, root, "late")).code == "archived"  # frozen already
        archive.archive_due()
        assert not archive.partition_exists(OLDER)

        api = client_for(member)
        thread = api.get(f"/api/v1/rooms/{room.pk}/messages/{root.id}/thread/").json()
        assert thread == before  # from the archive, exactly as it was in PostgreSQL
        assert (thread["root"]["reply_count"], thread["root"]["reactions"][0]["emoji"]) == (1, "🎉")
        assert [m["content"] for m in thread["results"]] == ["old answer"]
        assert error_of(lambda: reply(room, member, answer, "late")).code == "archived"
        assert error_of(lambda: react(room, owner, root, "👍")).code == "archived"
        assert reply(room, member, fresh, "new")[0].reply_to == fresh.id  # today's threads still work
        # Restored, the rows are identical, the new columns included.
        archive.restore_day(OLDER)
        stored = Message.objects.get(id=root.id)
        assert (stored.reply_count, stored.reactions[0]["emoji"], stored.change_kind) == (1, "🎉", "reaction")
        assert Message.objects.get(id=answer.id).reply_to == root.id
    finally:
        if archive.partition_exists(OLDER):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{archive.partition_name(OLDER)}"')
