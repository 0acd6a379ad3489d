import pytest
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def _tokens(api, username, password="correct-horse-battery"):
    response = api.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_signs_up_and_gets_tokens(api):
    response = api.post(
        "/api/v1/auth/signup/",
        {"username": "ada", "email": "ada@example.com", "password": "correct-horse-battery"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["username"] == "ada"
    tokens = _tokens(api, "ada")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = api.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json() == {
        "id": response.json()["id"],
        "username": "ada",
        "display_name": "ada",
        "has_display_name": False,
        "avatar_url": None,
        "email": "ada@example.com",
        "send_read_receipts": True,
    }


def test_it_rejects_a_duplicate_username_and_a_weak_password(api, make_user):
    make_user("ada")
    taken = api.post(
        "/api/v1/auth/signup/", {"username": "ada", "email": "a@example.com", "password": "correct-horse-1"}
    )
    assert taken.status_code == 400
    assert taken.json()["error"]["code"] == "invalid"
    assert "username" in taken.json()["error"]["fields"]
    weak = api.post("/api/v1/auth/signup/", {"username": "bob", "email": "b@example.com", "password": "123"})
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["fields"]


def test_it_rejects_malformed_json_with_a_stable_code(api):
    response = api.generic("POST", "/api/v1/auth/signup/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_it_needs_authentication(api):
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_refresh_rotates_and_blacklists_the_old_token(api, make_user):
    make_user("ada")
    tokens = _tokens(api, "ada")
    rotated = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != tokens["refresh"]
    reused = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"


def test_the_refresh_token_of_a_deleted_account_is_refused(api, make_user):
    """It was a 500: simplejwt looked the deleted user up with .get()."""
    ada = make_user("ada")
    refresh = _tokens(api, "ada")["refresh"]
    ada.delete()

    response = api.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (401, "no_active_account")


def test_logout_blacklists_the_refresh_token(api, make_user):
    make_user("ada")
    tokens = _tokens(api, "ada")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api.post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json").status_code == 205
    again = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401


def test_logout_refuses_someone_elses_refresh_token(api, make_user):
    make_user("ada")
    make_user("bob")
    bobs = _tokens(api, "bob")
    adas = _tokens(api, "ada")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {adas['access']}")
    response = api.post("/api/v1/auth/logout/", {"refresh": bobs["refresh"]}, format="json")
    assert response.status_code == 400
    assert api.post("/api/v1/auth/token/refresh/", {"refresh": bobs["refresh"]}, format="json").status_code == 200


def test_ws_ticket_is_random_and_short_lived(api, make_user):
    make_user("ada")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {_tokens(api, 'ada')['access']}")
    first = api.post("/api/v1/auth/ws-ticket/").json()
    second = api.post("/api/v1/auth/ws-ticket/").json()
    assert first["ticket"] != second["ticket"]
    assert len(first["ticket"]) >= 32
    assert first["expires_in"] == 30


def test_web_signup_signs_in_and_lands_on_home(client):
    response = client.post(
        reverse("signup"), {"username": "ada", "email": "ada@example.com", "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_web_pages_need_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_read_receipts_switch_saves_every_change(api, make_user):
    ada = make_user("ada")
    api.force_authenticate(ada)
    for value in (False, True, False, True):
        response = api.patch("/api/v1/me/", {"send_read_receipts": value}, format="json")
        assert response.status_code == 200 and response.json()["send_read_receipts"] is value
        ada.refresh_from_db()
        assert ada.send_read_receipts is value
