"""Rate limits: token buckets per socket and per user for socket frames, DRF throttles for sign-in,
sign-up and REST writes; over a limit, `rate_limited` with `retry_after_ms` (429 + Retry-After over
REST); a socket that keeps flooding is closed with 1008."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework.throttling import SimpleRateThrottle

from core.ratelimit import Buckets, Rate, Strikes, TokenBucket, take_all
from messaging.consumers import CLOSE_FLOODING
from messaging.models import Message
from rooms.services import room_create
from tests.conftest import client_for
from tests.sockets import connect, receive_close, receive_type

PASSWORD = "correct-horse-battery"


# -- the pure core -----------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(Rate(per_second=2, burst=3))

    assert [bucket.take(now=10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now=10.0) == pytest.approx(0.5)  # one token every half second
    assert bucket.take(now=10.5) == 0.0
    assert bucket.take(now=10.5) == pytest.approx(0.5)
    assert [bucket.take(now=100.0) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]  # capped at burst


def test_taking_from_several_levels_takes_from_all_or_none():
    socket, user = Buckets({"send": Rate(10, 5)}), Buckets({"send": Rate(1, 2)})

    assert [take_all(0.0, "send", socket, user) for _ in range(2)] == [0.0, 0.0]
    assert take_all(0.0, "send", socket, user) == pytest.approx(1.0)  # the user's level refuses
    assert socket.buckets["send"].tokens == pytest.approx(3)  # and the socket's token came back
    assert take_all(0.0, "unlimited kind", socket, user) == 0.0


def test_strikes_count_within_their_window_only():
    now = [0.0]
    strikes = Strikes(limit=2, window=10, clock=lambda: now[0])

    assert [strikes.strike(), strikes.strike(), strikes.strike()] == [False, False, True]
    now[0] = 20.0
    assert strikes.strike() is False


@pytest.mark.parametrize("text", ["5", "0,5", "1,0", "a,b"])
def test_a_bad_rate_setting_is_refused(text):
    with pytest.raises(ValueError):
        Rate.parse(text)


# -- the socket ----------------------------------------------------------------------------------


@pytest.fixture
def tight_limits(settings):
    settings.RATE_LIMITS = {
        "socket": {"frame": Rate(100, 100), "send": Rate(0.5, 3), "typing": Rate(0.5, 1)},
        "user": {"send": Rate(0.5, 4)},
    }
    settings.RATE_LIMIT_FLOOD_STRIKES = 5


def _send(room) -> dict:
    return {"type": "message.send", "room": str(room.pk), "content": "hi", "client_msg_id": str(uuid.uuid4())}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sends_past_the_sockets_burst_are_rate_limited_and_not_stored(make_user, tight_limits):
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Limits")
    socket, _ = await connect(ada)

    frames = [_send(room) for _ in range(4)]
    for frame in frames:
        await socket.send_json_to(frame)
    acks = [await receive_type(socket, "message.ack") for _ in range(3)]
    refused = await receive_type(socket, "error")

    assert len({ack["client_msg_id"] for ack in acks}) == 3
    assert (refused["code"], refused["ref"]) == ("rate_limited", frames[3]["client_msg_id"])
    assert 1 <= refused["retry_after_ms"] <= 2000
    assert await database_sync_to_async(Message.objects.count)() == 3
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_pings_are_answered_with_pong_within_their_own_limit(make_user, settings):
    """`ping` (docs/protocol.md: knowing the connection is dead) is answered by `pong`, after what
    was queued before it; more than the ping budget allows is refused like any frame."""
    settings.RATE_LIMITS = {"socket": {"frame": Rate(100, 100), "ping": Rate(0.5, 2)}, "user": {}}
    ada = await database_sync_to_async(make_user)("ada")
    socket, _ = await connect(ada)

    for _ in range(3):
        await socket.send_json_to({"type": "ping"})
    answers = [await socket.receive_json_from(timeout=5) for _ in range(3)]

    assert answers[:2] == [{"type": "pong"}, {"type": "pong"}]
    assert (answers[2]["type"], answers[2]["code"], answers[2]["ref"]) == ("error", "rate_limited", None)
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_users_sockets_share_the_users_budget(make_user, tight_limits):
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Limits")
    laptop, _ = await connect(ada)
    phone, _ = await connect(ada)

    for socket in (laptop, laptop, phone, phone):  # 2 + 2 within each socket's burst of 3
        await socket.send_json_to(_send(room))
    await phone.send_json_to(_send(room))  # the fifth of the user's: over the user's burst of 4
    answers = [await receive_type(laptop, "message.ack") for _ in range(2)]
    answers += [await receive_type(phone, "message.ack") for _ in range(2)]

    assert (await receive_type(phone, "error"))["code"] == "rate_limited"
    assert len(answers) == 4
    for socket in (laptop, phone):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_that_keeps_flooding_is_closed_with_1008(make_user, tight_limits):
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Limits")
    socket, _ = await connect(ada)

    for _ in range(20):
        await socket.send_json_to({"type": "typing", "room": str(room.pk)})
    code, frames = await receive_close(socket)

    assert code == CLOSE_FLOODING
    assert [f["code"] for f in frames if f["type"] == "error"] == ["rate_limited"] * 5


# -- REST and the sign-in forms ------------------------------------------------------------------


@pytest.fixture
def tight_throttles(monkeypatch):
    rates = dict(SimpleRateThrottle.THROTTLE_RATES) | {
        "signin_address": "100/min",
        "signin_account": "3/min",
        "signup_address": "2/hour",
    }
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)


@pytest.mark.django_db
def test_web_sign_in_is_limited_per_account_whatever_the_password(make_user, tight_throttles):
    make_user("ada")
    browser = Client()

    answers = [browser.post("/login/", {"username": "ada", "password": "wrong"}).status_code for _ in range(3)]
    refused = browser.post("/login/", {"username": "ADA", "password": PASSWORD})  # even the right one, any case

    assert answers == [200, 200, 200]
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_rest_sign_in_is_limited_with_429_and_retry_after(make_user, tight_throttles):
    make_user("ada")
    client = Client()

    def sign_in():
        return client.post(
            "/api/v1/auth/token/", {"username": "ada", "password": "wrong"}, content_type="application/json"
        )

    answers = [sign_in().status_code for _ in range(3)]
    refused = sign_in()

    assert answers == [401, 401, 401]
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited" and refused.json()["error"]["retry_after_ms"] >= 1000


@pytest.mark.django_db
def test_sign_ups_are_limited_per_address(tight_throttles):
    client = Client()

    def sign_up(name):
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        return client.post("/api/v1/auth/signup/", body, content_type="application/json").status_code

    assert [sign_up("one"), sign_up("two"), sign_up("three")] == [201, 201, 429]
    assert (
        Client().post("/signup/", {"username": "four", "email": "f@example.com", "password": PASSWORD}).status_code
        == 429
    )


@pytest.mark.django_db
def test_rest_sends_are_limited_per_user_and_reads_are_not(make_user, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", dict(SimpleRateThrottle.THROTTLE_RATES, send="2/min"))
    ada = make_user("ada")
    room = room_create(creator=ada, name="Rest")
    api = client_for(ada)
    url = f"/api/v1/rooms/{room.pk}/messages/"

    sent = [api.post(url, {"content": "hi", "client_msg_id": str(uuid.uuid4())}).status_code for _ in range(3)]
    read = api.get(url)

    assert sent == [201, 201, 429]
    assert read.status_code == 200 and len(read.json()["results"]) == 2


@pytest.fixture
def unreachable_cache(monkeypatch):
    """The throttles' cache is a Redis that refuses connections (nothing listens on port 9)."""
    from django.core.cache.backends.redis import RedisCache

    from core import throttles

    cache = RedisCache("redis://127.0.0.1:9/0", {"OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}})
    monkeypatch.setattr(SimpleRateThrottle, "cache", cache)
    monkeypatch.setattr(throttles._CacheOutage, "since", None)
    return throttles._CacheOutage


@pytest.mark.django_db
def test_rest_writes_and_sign_ins_go_through_while_the_cache_is_unreachable(
    make_user, monkeypatch, caplog, unreachable_cache
):
    """Throttles fail open: a Redis outage must not turn into a REST outage. The cache is asked
    once, and not again for FAIL_OPEN_SECONDS (one warning)."""
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        dict(SimpleRateThrottle.THROTTLE_RATES, send="1/min", signin_account="1/min"),
    )
    ada = make_user("ada")
    room = room_create(creator=ada, name="Rest")
    api = client_for(ada)
    url = f"/api/v1/rooms/{room.pk}/messages/"
    caplog.set_level("WARNING", logger="core.throttles")

    sent = [api.post(url, {"content": "hi", "client_msg_id": str(uuid.uuid4())}).status_code for _ in range(3)]
    sign_ins = [
        Client()
        .post("/api/v1/auth/token/", {"username": "ada", "password": PASSWORD}, content_type="application/json")
        .status_code
        for _ in range(2)
    ]

    assert sent == [201, 201, 201] and sign_ins == [200, 200]
    assert len([r for r in caplog.records if "rate limits are off" in r.getMessage()]) == 1


@pytest.mark.django_db
def test_throttles_ask_the_cache_again_once_the_fail_open_period_is_over(make_user, caplog, unreachable_cache):
    from core import throttles

    ada = make_user("ada")
    room = room_create(creator=ada, name="Rest")
    url = f"/api/v1/rooms/{room.pk}/messages/"
    caplog.set_level("WARNING", logger="core.throttles")

    assert client_for(ada).post(url, {"content": "one", "client_msg_id": str(uuid.uuid4())}).status_code == 201
    unreachable_cache.since -= throttles.FAIL_OPEN_SECONDS  # the period is over
    assert client_for(ada).post(url, {"content": "two", "client_msg_id": str(uuid.uuid4())}).status_code == 201

    assert len([r for r in caplog.records if "rate limits are off" in r.getMessage()]) == 2
