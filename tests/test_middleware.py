"""Django's middleware on the event loop (core/middleware.py).

Under ASGI each step of a `MiddlewareMixin` middleware was a round trip to the request's worker
thread. core.middleware runs the steps that cannot block on the loop: an API request now goes to
the thread for its view only. These tests drive Django's real async handler (AsyncClient) and
check both halves: what runs on the loop, and that what may block (saving a session, checking a
form's CSRF token, storing messages) still happens, in the thread. The last test keeps a digest
of every step's source as read, so that a Django or django-csp upgrade that changes one fails here
and is read again.
"""

import hashlib
import inspect
import re

import pytest
from asgiref.sync import SyncToAsync
from csp.middleware import CSPMiddleware
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.messages.storage.base import BaseStorage
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security
from django.test import AsyncClient
from django.utils.deprecation import MiddlewareMixin
from rest_framework_simplejwt.tokens import AccessToken

from core.checks import check_security_middleware
from workspaces.models import Workspace

PASSWORD = "correct-horse-battery"


@pytest.fixture
def hops(monkeypatch) -> list[str]:
    """The name of every function run in a worker thread (sync_to_async), in order."""
    names: list[str] = []
    call = SyncToAsync.__call__

    def recording(self, *args, **kwargs):
        func = getattr(self.func, "__func__", self.func)
        names.append(getattr(func, "__qualname__", type(func).__qualname__))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", recording)
    return names


def middleware_hops(names: list[str]) -> list[str]:
    return [name for name in names if re.search(r"Middleware\.|Storage\.", name)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_api_request_goes_to_a_thread_for_its_view_only(make_user, hops):
    user = await SyncToAsync(make_user)()
    token = str(AccessToken.for_user(user))
    hops.clear()

    response = await AsyncClient().get("/api/v1/rooms/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response["Content-Security-Policy"]  # the middleware's work was done, on the loop
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert middleware_hops(hops) == []
    assert any("View" in name or "view" in name for name in hops), hops


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_signing_in_saves_the_session_in_the_thread(make_user, hops):
    user = await SyncToAsync(make_user)(password=PASSWORD)
    client = AsyncClient()

    response = await client.post("/login/", {"username": user.username, "password": PASSWORD})

    assert response.status_code == 302
    assert "SessionMiddleware.process_response" in hops  # modified: saved in the thread
    hops.clear()
    page = await client.get("/")  # the saved session signs the next request in
    assert page.status_code == 200
    assert user.username in page.content.decode()
    assert "SessionMiddleware.process_response" not in hops  # read, not changed: on the loop


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_form_post_without_its_csrf_token_is_refused(make_user):
    user = await SyncToAsync(make_user)(password=PASSWORD)
    client = AsyncClient(enforce_csrf_checks=True)
    await SyncToAsync(client.force_login)(user)

    refused = await client.post("/workspaces/new/", {"name": "Refused", "slug": "refused"})

    assert refused.status_code == 403
    assert not await Workspace.objects.filter(slug="refused").aexists()
    page = await client.get("/")  # a page sets the CSRF cookie; its token passes
    token = page.cookies["csrftoken"].value
    accepted = await client.post("/workspaces/new/", {"name": "Kept", "slug": "kept", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert await Workspace.objects.filter(slug="kept").aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_messages_are_stored_and_shown_once(make_user, hops):
    user = await SyncToAsync(make_user)(password=PASSWORD)
    client = AsyncClient()
    await SyncToAsync(client.force_login)(user)

    await client.post("/workspaces/new/", {"name": "Harbour", "slug": "harbour"})

    assert "MessageMiddleware.process_response" in hops  # added: stored in the thread
    shown = await client.get("/")
    assert "You created Harbour." in shown.content.decode()
    again = await client.get("/")
    assert "You created Harbour." not in again.content.decode()


# What core.middleware runs on the loop, as read. A failure here means an upgrade changed one of
# these steps: read the new source, check that the step still cannot block (or give the class a
# `request_blocks` / `response_blocks` rule for when it may), then record the new digest.
READ = {
    MiddlewareMixin.__acall__: "adf8cbca",
    security.SecurityMiddleware.process_request: "3373d262",
    security.SecurityMiddleware.process_response: "3822bd0d",
    CSPMiddleware.process_request: "bf5a7431",
    CSPMiddleware.process_response: "fa72a0cd",
    sessions.SessionMiddleware.process_request: "6782d248",
    sessions.SessionMiddleware.process_response: "fbaf5503",
    common.CommonMiddleware.process_request: "993f4d1f",
    common.CommonMiddleware.process_response: "eb5ad294",
    csrf.CsrfViewMiddleware.process_request: "9aec8dfd",
    csrf.CsrfViewMiddleware.process_view: "cdbdabe0",
    csrf.CsrfViewMiddleware.process_response: "9fe1054c",
    csrf.CsrfViewMiddleware._get_secret: "b3a608af",
    auth.AuthenticationMiddleware.process_request: "6dd39b90",
    messages.MessageMiddleware.process_request: "7f4834ba",
    messages.MessageMiddleware.process_response: "04469c94",
    BaseStorage.update: "3db95891",
    clickjacking.XFrameOptionsMiddleware.process_response: "045e5788",
}


def digest(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:8]


@pytest.mark.parametrize("function", list(READ), ids=lambda f: f.__qualname__)
def test_the_steps_run_on_the_loop_are_those_read(function):
    assert digest(function) == READ[function], f"{function.__module__}.{function.__qualname__} changed"


def test_the_deploy_checks_see_our_middleware_as_djangos(settings):
    """Django finds its security middleware by path (core/checks.py): ours in place, its checks
    still look at the settings that depend on them; ours missing, it is said."""
    settings.SECURE_SSL_REDIRECT = settings.CSRF_COOKIE_SECURE = True  # as in production
    settings.SECURE_HSTS_SECONDS = 0
    assert [message.id for message in check_security_middleware(None)] == ["security.W004"]
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != "core.middleware.SecurityMiddleware"]
    assert [message.id for message in check_security_middleware(None)] == ["core.W001"]
