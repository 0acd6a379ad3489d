"""Profiles and the account: display names and avatars (REST, the account page, the payloads that
carry them), changing email and password, and password reset by email through a real SMTP server
(aiosmtpd, started here). Avatars go to a real S3 API (moto's server, as the archive tests)."""

import io
import re
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts import services as accounts
from accounts.models import User
from rooms.payloads import user_payload
from tests.conftest import client_for, room_with, send_message
from tests.sockets import connect, receive_type
from tests.test_archive import keys_in, s3, s3_server  # noqa: F401  (moto's S3 server and a fresh bucket)

PASSWORD = "correct-horse-battery"


def png(width: int = 300, height: int = 200, colour: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def upload(api, data: bytes, name: str = "me.png"):
    file = io.BytesIO(data)
    file.name = name  # multipart needs a file name
    return api.post("/api/v1/me/avatar/", {"avatar": file}, format="multipart")


def described_ids_exist(html: str) -> list[str]:
    """Every id an aria-describedby names, that the page does not have (none, when all is well)."""
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    named = [name for value in re.findall(r'aria-describedby="([^"]*)"', html) for name in value.split()]
    return [name for name in named if name not in ids]


# -- display names -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sets_and_clears_a_display_name_over_rest(make_user):
    ada = make_user("ada")
    api = client_for(ada)

    response = api.patch("/api/v1/me/", {"display_name": "  Ada \n  Lovelace "}, format="json")

    assert response.status_code == 200, response.content
    me = response.json()
    assert (me["display_name"], me["has_display_name"], me["avatar_url"]) == ("Ada Lovelace", True, None)
    assert User.objects.get(pk=ada.pk).display_name == "Ada Lovelace"
    cleared = api.patch("/api/v1/me/", {"display_name": ""}, format="json").json()
    assert (cleared["display_name"], cleared["has_display_name"]) == ("ada", False)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    ["x" * 65, "Ada\u202eecalevoL", "zero\u200bwidth", "bell\x07", ["Ada"]],
    ids=["too-long", "bidi-override", "zero-width", "control", "not-a-string"],
)
def test_it_refuses_a_bad_display_name_and_changes_nothing(make_user, name):
    ada = make_user("ada", display_name="Ada")

    response = client_for(ada).patch("/api/v1/me/", {"display_name": name}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "display_name" in response.json()["error"]["fields"]
    assert User.objects.get(pk=ada.pk).display_name == "Ada"


@pytest.mark.django_db
def test_an_emoji_display_name_keeps_its_joiners_and_no_name_shows_the_username(make_user):
    ada, bob = make_user("ada"), make_user("bob")

    accounts.profile_update(user=ada, display_name="Fam 👨‍👩‍👧")

    assert User.objects.get(pk=ada.pk).display_name == "Fam 👨‍👩‍👧"
    assert user_payload(bob)["display_name"] == "bob"


@pytest.mark.django_db
def test_messages_carry_the_senders_display_name_and_avatar_without_a_query_per_message(make_user):
    ada = make_user("ada", display_name="Ada Lovelace", avatar="ab" * 16)
    bob = make_user("bob")
    room = room_with(ada, members={bob: "member"})
    api = client_for(bob)

    def page_queries(count: int) -> tuple[int, dict]:
        for index in range(count):
            send_message(room, ada, f"hello {index}")
        with CaptureQueriesContext(connection) as queries:
            body = api.get(f"/api/v1/rooms/{room.pk}/messages/").json()
        return len(queries), body

    few, _ = page_queries(1)
    many, body = page_queries(9)

    assert many == few  # senders come with the messages (one join), whatever their number
    assert body["results"][0]["sender"] == {
        "id": ada.pk,
        "username": "ada",
        "display_name": "Ada Lovelace",
        "avatar_url": f"/avatars/{ada.pk}/{'ab' * 16}.png",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_new_name_reaches_the_users_open_socket_and_what_it_sends_next(make_user):
    """The socket keeps its user in memory: the profile event updates it, so its next message
    carries the new name (without reading the user again)."""
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_with)(ada)
    socket, _ = await connect(ada)
    try:
        await database_sync_to_async(accounts.profile_update)(
            user=await database_sync_to_async(User.objects.get)(pk=ada.pk), display_name="Countess"
        )
        profile = await receive_type(socket, "user.profile")
        assert profile["user"]["display_name"] == "Countess"

        await socket.send_json_to(
            {"type": "message.send", "room": str(room.pk), "content": "hi", "client_msg_id": str(uuid.uuid4())}
        )
        ack = await receive_type(socket, "message.ack")
        assert ack["message"]["sender"]["display_name"] == "Countess"
    finally:
        await socket.disconnect()


@pytest.mark.django_db
def test_a_new_name_goes_to_every_room_of_its_user_for_the_pages_that_show_it(
    make_user, events, django_capture_on_commit_callbacks
):
    ada, ben, cy = make_user("ada"), make_user("ben"), make_user("cy")
    shared, own = room_with(ada, "Shared", members={ben: "member"}), room_with(ada, "Own")
    room_with(cy, "Elsewhere")
    with django_capture_on_commit_callbacks(execute=True):
        accounts.profile_update(user=ada, display_name="Countess")

    frame = {"type": "user.profile", "user": user_payload(User.objects.get(pk=ada.pk))}
    (mine,) = [event for event in events.of_type("user.relay") if event.frame["type"] == "user.profile"]
    (rooms,) = events.of_type("user.profile")
    assert mine.groups == [f"user.{ada.pk}"] and mine.frame == frame
    assert sorted(rooms.groups) == sorted(f"room.{room.pk}" for room in (shared, own))  # not Elsewhere
    assert rooms.frame == frame and rooms.event["user"] == ada.pk
    with django_capture_on_commit_callbacks(execute=True):
        accounts.profile_update(user=ada, display_name="Countess")  # no change: nothing sent
    assert len(events.of_type("user.profile")) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_new_name_reaches_the_sockets_of_people_sharing_rooms_once(make_user):
    ada, ben = await database_sync_to_async(make_user)("ada"), await database_sync_to_async(make_user)("ben")
    for name in ("One", "Two"):  # two rooms in common: Ben's socket hears it once
        await database_sync_to_async(room_with)(ada, name, members={ben: "member"})
    socket, _ = await connect(ben)
    try:
        for name in ("Countess", "Ada L."):
            await database_sync_to_async(accounts.profile_update)(
                user=await database_sync_to_async(User.objects.get)(pk=ada.pk), display_name=name
            )
        first = await receive_type(socket, "user.profile")
        second = await receive_type(socket, "user.profile")  # the next one, not the first's copy
        assert (first["user"]["id"], first["user"]["display_name"]) == (ada.pk, "Countess")
        assert second["user"]["display_name"] == "Ada L."
    finally:
        await socket.disconnect()


# -- avatars (moto's S3 server) ------------------------------------------------------------------


@pytest.mark.django_db
def test_an_avatar_is_squared_resized_stored_in_s3_served_and_replaced(
    make_user,
    s3,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    client, bucket = s3
    ada = make_user("ada")
    api = client_for(ada)

    first = upload(api, png(300, 200))

    assert first.status_code == 200, first.content
    url = first.json()["avatar_url"]
    token = re.fullmatch(rf"/avatars/{ada.pk}/([0-9a-f]{{32}})\.png", url).group(1)
    assert keys_in(client, bucket) == [f"avatars/{ada.pk}/{token}.png"]
    served = Client().get(url)  # a capability URL: no session needed
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert "immutable" in served["Cache-Control"]
    image = Image.open(io.BytesIO(b"".join(served.streaming_content) if served.streaming else served.content))
    assert (image.format, image.size) == ("PNG", (128, 128))

    with django_capture_on_commit_callbacks(execute=True):  # the replaced picture is deleted after commit
        second = upload(api, png(64, 640, "navy"), "tall.jpg")

    new_url = second.json()["avatar_url"]
    assert new_url != url
    assert keys_in(client, bucket) == [new_url.removeprefix("/")]  # the replaced one is deleted
    assert Client().get(url).status_code == 404
    assert Client().get(f"/avatars/{ada.pk}/{'0' * 32}.png").status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        removed = api.delete("/api/v1/me/avatar/")

    assert removed.status_code == 200 and removed.json()["avatar_url"] is None
    assert keys_in(client, bucket) == []


@pytest.mark.django_db
def test_it_refuses_what_is_not_a_usable_image_and_keeps_the_old_avatar(make_user, s3, settings):  # noqa: F811
    client, bucket = s3
    ada = make_user("ada")
    api = client_for(ada)
    kept = upload(api, png()).json()["avatar_url"]
    truncated = png()[:60]
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, format="PNG")  # 81 Mpx, a few kB

    for data, code in [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "avatar_invalid"),
        (b"GIF89a not really", "avatar_invalid"),
        (truncated, "avatar_invalid"),
        (bomb.getvalue(), "avatar_invalid"),
    ]:
        response = upload(api, data)
        assert response.status_code == 400, (code, response.content)
        assert response.json()["error"]["code"] == code
    settings.AVATAR_MAX_BYTES = 1000
    too_big = upload(api, png(400, 400, "red"))
    assert too_big.json()["error"]["code"] == "avatar_too_large"
    missing = api.post("/api/v1/me/avatar/", {}, format="multipart")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid"

    assert api.get("/api/v1/me/").json()["avatar_url"] == kept
    assert keys_in(client, bucket) == [kept.removeprefix("/")]


# -- passwords and email -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_changes_the_password_over_rest_only_with_the_current_one(
    make_user, events, django_capture_on_commit_callbacks
):
    ada = make_user("ada")
    api = client_for(ada)

    wrong = api.post(
        "/api/v1/me/password/", {"current_password": "nope", "new_password": "another-horse-battery"}, format="json"
    )
    weak = api.post("/api/v1/me/password/", {"current_password": PASSWORD, "new_password": "ada"}, format="json")

    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "wrong_password")
    assert "current_password" in wrong.json()["error"]["fields"]
    assert (weak.status_code, list(weak.json()["error"]["fields"])) == (400, ["new_password"])
    assert User.objects.get(pk=ada.pk).check_password(PASSWORD)
    assert events.of_type("user.revoked") == []

    with django_capture_on_commit_callbacks(execute=True):
        done = api.post(
            "/api/v1/me/password/",
            {"current_password": PASSWORD, "new_password": "another-horse-battery"},
            format="json",
        )

    assert done.status_code == 204
    assert User.objects.get(pk=ada.pk).check_password("another-horse-battery")
    assert [e.groups for e in events.of_type("user.revoked")] == [[f"user.{ada.pk}"]]


@pytest.mark.django_db
def test_the_account_page_saves_name_and_email_and_keeps_this_session_after_a_new_password(make_user):
    ada = make_user("ada")
    browser = Client()
    browser.force_login(ada)

    page = browser.get("/account/")
    assert page.status_code == 200
    assert described_ids_exist(page.content.decode()) == []
    named = browser.post("/account/", {"form": "profile", "profile-display_name": "Ada L."})
    assert named.status_code == 302
    assert User.objects.get(pk=ada.pk).display_name == "Ada L."

    refused = browser.post(
        "/account/", {"form": "email", "email-email": "ada@new.example", "email-current_password": "wrong"}
    )
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "Your current password is not right." in html
    assert "data-error-summary" in html and 'aria-invalid="true"' in html
    assert described_ids_exist(html) == []
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"
    asked = browser.post(
        "/account/", {"form": "email", "email-email": "ada@new.example", "email-current_password": PASSWORD}
    )
    assert asked.status_code == 302
    assert "we sent it a link" in browser.get("/account/").content.decode()
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"  # until the mailed link is followed

    changed = browser.post(
        "/account/",
        {
            "form": "password",
            "password-old_password": PASSWORD,
            "password-new_password1": "another-horse-battery",
            "password-new_password2": "another-horse-battery",
        },
    )
    assert changed.status_code == 302
    assert browser.get("/account/").status_code == 200  # still signed in here
    other = Client()
    assert not other.login(username="ada", password=PASSWORD)
    assert other.login(username="ada", password="another-horse-battery")


@pytest.mark.django_db
def test_sign_up_shows_the_password_rules_first_and_points_at_its_errors():
    form = Client().get("/signup/").content.decode()
    assert 'autocomplete="new-password"' in form and 'autocomplete="username"' in form
    assert 'autocomplete="email"' in form
    assert 'id="id_password_helptext"' in form and "at least 8 characters" in form
    assert described_ids_exist(form) == []
    login = Client().get("/login/").content.decode()
    assert 'autocomplete="current-password"' in login and 'autocomplete="username"' in login

    bad_email = Client().post("/signup/", {"username": "bob", "email": "nope", "password": PASSWORD}).content.decode()
    weak = Client().post("/signup/", {"username": "bob", "email": "bob@example.com", "password": "123"})

    html = weak.content.decode()
    assert weak.status_code == 200 and not User.objects.filter(username="bob").exists()
    assert described_ids_exist(html) == described_ids_exist(bad_email) == []
    assert 'aria-describedby="id_password_helptext id_password_error"' in html
    assert 'id="id_email_error"' in bad_email and 'aria-invalid="true"' in bad_email
    assert "data-error-summary" in html


# -- password reset by email (aiosmtpd: a real SMTP server) ----------------------------------------


@pytest.mark.django_db
def test_a_password_reset_mails_a_single_use_link_that_sets_a_new_password(
    make_user, smtp, events, django_capture_on_commit_callbacks
):
    ada = make_user("ada")
    browser = Client()

    nobody = browser.post("/password-reset/", {"email": "nobody@example.com"})
    sent = browser.post("/password-reset/", {"email": "ada@example.com"})

    assert nobody.status_code == sent.status_code == 302  # the same answer: nothing says who has an account
    assert nobody["Location"] == sent["Location"] == "/password-reset/sent/"
    assert len(smtp.messages) == 1  # the SMTP server accepted it before the page answered
    message = smtp.messages[0]
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Reset your Parley password"
    link = re.search(r"http://testserver(/reset/[^/\s]+/[^/\s]+/)", message.get_payload(decode=True).decode()).group(1)

    form = browser.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    weak = browser.post(set_url, {"new_password1": "ada", "new_password2": "ada"})
    assert weak.status_code == 200 and described_ids_exist(weak.content.decode()) == []
    with django_capture_on_commit_callbacks(execute=True):  # the user's sockets are closed after commit
        done = browser.post(
            set_url, {"new_password1": "another-horse-battery", "new_password2": "another-horse-battery"}
        )

    assert done.status_code == 302 and done["Location"] == "/reset/done/"
    assert User.objects.get(pk=ada.pk).check_password("another-horse-battery")
    assert [e.groups for e in events.of_type("user.revoked")] == [[f"user.{ada.pk}"]]  # sockets closed
    again = Client().get(link, follow=True)
    assert "This link no longer works" in again.content.decode()


@pytest.mark.django_db
def test_a_new_email_is_applied_only_from_the_link_mailed_to_it_and_once(make_user, smtp, settings):
    ada = make_user("ada")
    api = client_for(ada)
    wrong = api.patch("/api/v1/me/", {"email": "ada@new.example", "current_password": "wrong"}, format="json")
    same = api.patch("/api/v1/me/", {"email": "ADA@example.com", "current_password": PASSWORD}, format="json")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "wrong_password")
    assert (same.status_code, same.json()["error"]["code"]) == (400, "email_unchanged")
    assert smtp.messages == []

    asked = api.patch("/api/v1/me/", {"email": "ada@new.example", "current_password": PASSWORD}, format="json")
    assert asked.status_code == 200
    assert asked.json()["email"] == "ada@example.com"  # not yet
    assert asked.json()["email_change"] == {"sent_to": "ada@new.example", "expires_in": settings.EMAIL_CHANGE_TIMEOUT}
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"
    # The new address gets the link; the old one is told (a change its owner did not ask for shows).
    notice, confirm = sorted(smtp.messages, key=lambda message: message["To"])
    assert (notice["To"], confirm["To"]) == ("ada@example.com", "ada@new.example")
    assert "ada@new.example" in notice.get_payload(decode=True).decode()
    text = confirm.get_payload(decode=True).decode()
    assert "/account/email/" not in notice.get_payload(decode=True).decode()
    link = re.search(r"http://testserver(/account/email/([^/\s]+)/)", text)
    assert link is not None
    path, token = link.group(1), link.group(2)

    # Opening the link asks first (mail scanners open links); confirming applies it, signed in or not.
    browser = Client()
    page = browser.get(path)
    assert page.status_code == 200 and "ada@new.example" in page.content.decode()
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"
    done = browser.post(path)
    assert done.status_code == 302 and done["Location"] == "/login/"
    assert User.objects.get(pk=ada.pk).email == "ada@new.example"
    # Once: the page and REST both say so, with a stable code.
    again = browser.post(path)
    assert again.status_code == 409 and 'data-error-code="email_link_used"' in again.content.decode()
    used = APIClient().post("/api/v1/me/email/confirm/", {"token": token}, format="json")
    assert (used.status_code, used.json()["error"]["code"]) == (409, "email_link_used")
    forged = APIClient().post("/api/v1/me/email/confirm/", {"token": token[:-2] + "xx"}, format="json")
    assert (forged.status_code, forged.json()["error"]["code"]) == (400, "email_link_invalid")

    # A link older than EMAIL_CHANGE_TIMEOUT: expired, and nothing changes.
    api.patch("/api/v1/me/", {"email": "ada@newer.example", "current_password": PASSWORD}, format="json")
    (mailed,) = [message for message in smtp.messages if message["To"] == "ada@newer.example"]
    newer = re.search(r"/account/email/([^/\s]+)/", mailed.get_payload(decode=True).decode())
    assert newer is not None
    settings.EMAIL_CHANGE_TIMEOUT = -1  # every link is older than that
    expired = APIClient().post("/api/v1/me/email/confirm/", {"token": newer.group(1)}, format="json")
    assert (expired.status_code, expired.json()["error"]["code"]) == (400, "email_link_expired")
    assert User.objects.get(pk=ada.pk).email == "ada@new.example"


# -- limits on the mail people make the server send (core.throttles.budgets_take) ------------------


def mail_rates(monkeypatch, **rates: str) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", dict(SimpleRateThrottle.THROTTLE_RATES, **rates))


@pytest.mark.django_db
def test_email_change_mails_are_limited_per_user_and_per_address(make_user, smtp, monkeypatch):
    mail_rates(monkeypatch, email_change_user="3/hour", email_change_address="2/hour")
    ada, bob = make_user("ada"), make_user("bob")

    def ask(user, email):
        return client_for(user).patch("/api/v1/me/", {"email": email, "current_password": PASSWORD}, format="json")

    assert ask(ada, "target@example.com").status_code == 200
    assert ask(bob, "TARGET@example.com").status_code == 200  # another asker; the address, whatever its case
    refused = ask(ada, "target@example.com")  # that address had its 2 this hour
    error = refused.json()["error"]
    assert (refused.status_code, error["code"]) == (429, "email_rate_limited")
    assert error["retry_after_ms"] > 0 and int(refused["Retry-After"]) >= 1
    assert error["fields"]["email"] == [error["message"]] and "Too many emails" in error["message"]
    # The refusal cost Ada nothing: two more addresses, then her own 3 an hour are spent.
    assert ask(ada, "other@example.com").status_code == 200
    assert ask(ada, "third@example.com").status_code == 200
    assert (ask(ada, "fourth@example.com").status_code, len(smtp.messages)) == (429, 8)  # 4 asks, 2 mails each
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"

    # The account page says so on the email field, and sends nothing.
    browser = Client()
    browser.force_login(ada)
    page = browser.post(
        "/account/", {"form": "email", "email-email": "fifth@example.com", "email-current_password": PASSWORD}
    )
    html = page.content.decode()
    assert page.status_code == 400 and 'id="id_email-email_error"' in html and "Too many emails" in html
    assert len(smtp.messages) == 8


@pytest.mark.django_db
def test_password_reset_mails_are_limited_per_address_whether_or_not_it_has_an_account(make_user, smtp, monkeypatch):
    mail_rates(monkeypatch, password_reset_address="2/hour")
    make_user("ada")
    browser = Client()
    for address in ("ada@example.com", "nobody@example.com"):
        for _ in range(2):
            assert browser.post("/password-reset/", {"email": address})["Location"] == "/password-reset/sent/"
        refused = browser.post("/password-reset/", {"email": address.upper()})
        html = refused.content.decode()
        # The same refusal for both: it says nothing about who has an account.
        assert refused.status_code == 429 and 'id="id_email_error"' in html and "Too many emails" in html
    assert [message["To"] for message in smtp.messages] == ["ada@example.com", "ada@example.com"]
