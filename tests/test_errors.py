"""Every error under /api/ is JSON: {"error": {"code", "message", "fields"?}}, never Django's HTML."""

import pytest
from django.test import Client
from django.urls import path

from config import urls as root_urls
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _explode(request):
    raise RuntimeError("boom")


urlpatterns = [
    *root_urls.urlpatterns,
    path("api/v1/explode/", _explode),
    path("explode/", _explode),
]
handler404 = root_urls.handler404
handler500 = root_urls.handler500


def test_an_unknown_api_path_is_a_json_404(make_user):
    for client in (Client(), client_for(make_user())):
        response = client.get("/api/v1/no/such/thing/")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_a_wrong_method_is_a_json_405(make_user):
    response = client_for(make_user()).put("/api/v1/rooms/", {})

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_bad_json_body_is_a_json_400(make_user):
    response = client_for(make_user()).post("/api/v1/rooms/", "{nope", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_an_unhandled_exception_is_a_json_500_for_the_api_and_html_for_pages(settings):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)

    api = client.get("/api/v1/explode/")
    page = client.get("/explode/")

    assert api.status_code == 500
    assert api.json() == {"error": {"code": "internal", "message": "Something went wrong; please retry."}}
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_pages_keep_their_html_404(make_user):
    client = Client()
    client.force_login(make_user())

    response = client.get("/no/such/page/")

    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
