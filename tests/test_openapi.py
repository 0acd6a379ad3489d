"""The OpenAPI schema at /api/v1/schema/ tells the truth about every response the API gives, and
the API refuses what the schema does not allow with a JSON error, never a 5xx.

Schemathesis generates schema-valid requests for every documented operation and sends them, in
process (Django's WSGI handler, inside the test's transaction), as a user who has rooms, members
and messages; path parameters are mostly the ids of that user's real rooms, messages and people,
so the success paths are reached, not only the 404s. Each response must have a documented status,
no 5xx, and a body that validates against the schema and has no property the schema leaves out.
Bounded and seeded: the same requests every run. (A full fuzzing pass is a separate job.)

Negative testing (issue 12): schemathesis' negative mode makes requests the schema forbids (wrong
types, missing or extra fields, out-of-range numbers, malformed ids, bodies that are not objects)
for every operation; each must be answered without a 5xx, and every error as the API's one error
body, `{"error": {"code", "message", ...}}` in JSON (core.api).
"""

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import User
from config import api_urls
from messaging.services import message_delete, message_edit, message_send, reaction_set, receipt_update
from rooms.models import Membership, Room
from rooms.services import direct_room_get_or_create, room_create
from transports import urls as transports_urls

SCHEMA_URL = "/api/v1/schema/"
MAX_EXAMPLES = 8  # per operation; the whole file runs in well under a minute on 2 cores

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261202,
        "generation": {
            "mode": "positive",  # documented requests; malformed ones are the fuzzing pass's job
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "with-security-parameters": False,  # every request is authenticated as the user below
        },
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        # Values come from the schema and the seed, not from literals mined from the source code.
        "analysis": {"constants": {"enabled": False}},
    }
)

schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, get_wsgi_application(), config=CONFIG)

NEGATIVE_EXAMPLES = 6  # per operation
NEGATIVE_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261202,
        "generation": {
            "mode": "negative",
            "max-examples": NEGATIVE_EXAMPLES,
            "deterministic": True,
            "with-security-parameters": False,
        },
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "analysis": {"constants": {"enabled": False}},
    }
)
negative_schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, get_wsgi_application(), config=NEGATIVE_CONFIG)

PASSWORD = "correct-horse-battery"

# What the current test's world holds (see `world`): real values for path parameters by name, and
# for request body fields ("user", "refresh", and Ana's credentials).
KNOWN: dict[str, list[Any]] = {}


def _mostly_known(name: str, generated: Any) -> st.SearchStrategy:
    return st.sampled_from([*KNOWN.get(name, []), generated])


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
    """Mostly real ids (rooms Ana owns, is a member of, may only see, ...), sometimes the generated
    value: the success paths and the refusals both get exercised."""
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries({name: _mostly_known(name, value) for name, value in path_parameters.items()})


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    """The same for the body fields that name something: people, refresh tokens, credentials."""
    if not isinstance(body, dict):
        return st.just(body)
    if {"username", "password"} <= body.keys() and "email" not in body:  # signing in
        return st.sampled_from([{**body, "username": "ana", "password": PASSWORD}, body])
    fields = {name: _mostly_known(name, body[name]) for name in ("user", "refresh") if name in body}
    return st.fixed_dictionaries(fields).map(lambda known: {**body, **known})


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Requests run in the test's transaction (like Django's test client): Django's handler must
    not close the test's database connection at the start and end of each request."""
    signals = [signal for signal in (request_started, request_finished) if signal.disconnect(close_old_connections)]
    yield
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def world(db, in_test_transaction) -> User:
    """Ana, the user every request is made as, and what she can reach: a public room she owns
    with an admin, a member and a viewer, messages (one edited, one deleted, receipts), a private
    room where she is a member, a direct room, a public room she has not joined, and Eve, whom
    she has never talked to."""
    ana, bob, cid, dee, eve = (
        User.objects.create_user(username=name, email=f"{name}@example.com", password=PASSWORD)
        for name in ("ana", "bob", "cid", "dee", "eve")
    )
    lobby = room_create(creator=ana, name="Lobby", topic="Say hi")
    for user, role in ((bob, "admin"), (cid, "member"), (dee, "viewer")):
        Membership.objects.create(room=lobby, user=user, role=role)
    secret = room_create(creator=bob, name="Secret", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=secret, user=ana, role="member")
    direct, _ = direct_room_get_or_create(user=ana, other=cid)
    elsewhere = room_create(creator=cid, name="Elsewhere")

    messages = []
    for room, sender, text in (
        (lobby, ana, "hello"),
        (lobby, bob, "hi ana"),
        (lobby, ana, "how are you?"),
        (lobby, cid, "fine"),
        (secret, bob, "psst"),
        (direct, cid, "just us"),
    ):
        message, _ = message_send(user=sender, room_id=room.pk, content=text, client_msg_id=uuid.uuid4())
        messages.append(message)
    message_edit(user=ana, room_id=lobby.pk, message_id=messages[0].id, content="hello, all")
    message_delete(user=cid, room_id=lobby.pk, message_id=messages[3].id)
    reply, _ = message_send(
        user=bob, room_id=lobby.pk, content="a reply", client_msg_id=uuid.uuid4(), reply_to=messages[1].id
    )
    messages.append(reply)
    reaction_set(user=dee, room_id=lobby.pk, message_id=messages[1].id, emoji="👍", present=True)
    receipt_update(user=bob, room_id=lobby.pk, delivered_sequence=3, read_sequence=2)

    KNOWN.clear()  # listed twice: where Ana may do the most, so that successes are frequent
    KNOWN["room_id"] = [str(room.pk) for room in (lobby, lobby, secret, direct, elsewhere)]
    KNOWN["message_id"] = [str(message.id) for message in messages]
    KNOWN["user_id"] = [str(user.pk) for user in (ana, bob, cid, dee, dee)] + ["cid"]
    KNOWN["user"] = [str(ana.pk), str(bob.pk), "cid", "dee", "eve", "eve"]
    KNOWN["refresh"] = [str(RefreshToken.for_user(ana))]
    return ana


def _properties(schema_node: dict, definitions: dict) -> dict | None:
    """The declared properties of an object schema (through $ref and allOf), or None if the node
    is not an object with declared properties."""
    if "$ref" in schema_node:
        return _properties(definitions[schema_node["$ref"].rsplit("/", 1)[1]], definitions)
    for part in schema_node.get("allOf", []):
        found = _properties(part, definitions)
        if found is not None:
            return found
    return schema_node.get("properties")


def _undocumented(body: Any, schema_node: dict, definitions: dict, path: str = "$") -> list[str]:
    """Paths of the properties in `body` that `schema_node` does not declare (nested included)."""
    if "$ref" in schema_node:
        return _undocumented(body, definitions[schema_node["$ref"].rsplit("/", 1)[1]], definitions, path)
    if isinstance(body, list) and "items" in schema_node:
        return [
            bad
            for i, item in enumerate(body)
            for bad in _undocumented(item, schema_node["items"], definitions, f"{path}[{i}]")
        ]
    if not isinstance(body, dict):
        return []
    properties = _properties(schema_node, definitions)
    if properties is None:  # a free-form object (e.g. an error's `fields`)
        return []
    problems = [f"{path}.{key}" for key in body if key not in properties]
    for key, value in body.items():
        if key in properties:
            problems += _undocumented(value, properties[key], definitions, f"{path}.{key}")
    return problems


@schemathesis.check
def no_undocumented_properties(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
):
    """Every property of a JSON body is declared by the schema. (The schema allows additional
    properties, so validating against it cannot notice a field that a payload has and the schema
    lacks, which is how `unread` went undocumented.)"""
    documented = case.operation.definition.raw.get("responses", {}).get(str(response.status_code))
    if documented is None or not response.content:
        return None
    body_schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if body_schema is None:
        return None
    extra = _undocumented(response.json(), body_schema, case.operation.schema.raw_schema["components"]["schemas"])
    assert not extra, f"undocumented properties in the {response.status_code} body: {', '.join(extra)}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_undocumented_properties,
]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_documented_response_matches_the_schema(case, world):
    token = AccessToken.for_user(world)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
    assert not connection.needs_rollback, "a request left the test's transaction broken"


@schemathesis.check
def errors_are_the_api_error_body(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
):
    """Every 4xx/5xx is JSON `{"error": {"code": "…", "message": "…", …}}` (never HTML, YAML or
    DRF's own `{"detail": …}`)."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"a {response.status_code} answered {content_type!r}"
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error body: {body!r}"
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], f"no error code: {body!r}"
    assert isinstance(error.get("message"), str), f"no error message: {body!r}"
    return True


NEGATIVE_CHECKS = [not_a_server_error, errors_are_the_api_error_body, negative_data_rejection]


@negative_schema.parametrize()
@settings(max_examples=NEGATIVE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_requests_the_schema_forbids_get_a_json_error_and_no_5xx(case, world):
    token = AccessToken.for_user(world)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=NEGATIVE_CHECKS)
    assert not connection.needs_rollback, "a request left the test's transaction broken"


# Streams, documented in docs/protocol.md ("Server-Sent Events and long-polling") rather than in
# the schema: an event stream has no response schema, and the calls above would wait on both
# (tests/test_transports.py covers them).
STREAMS = {"/api/v1/events/", "/api/v1/poll/"}


def test_every_route_of_the_api_is_in_the_schema():
    """A view without a schema would be skipped above: every /api/v1/ route is documented."""
    routes = {
        "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        # The streams' routes come first in config/urls.py (their requests last), the rest here.
        for pattern in [*transports_urls.urlpatterns, *api_urls.urlpatterns]
        if pattern.name != "api-schema"
    }
    assert STREAMS <= routes
    assert routes - STREAMS == set(schema.raw_schema["paths"])


def test_the_room_list_documents_unread():
    """`GET rooms/` returns `unread` per room: the schema says so (it once did not)."""
    components = schema.raw_schema["components"]["schemas"]
    listed = schema.raw_schema["paths"]["/api/v1/rooms/"]["get"]["responses"]["200"]["content"]["application/json"]
    room_list = components[listed["schema"]["$ref"].rsplit("/", 1)[1]]
    entry = components[room_list["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert entry["properties"].get("unread", {}).get("type") == "integer"
    assert "unread" not in entry["required"]  # not with ?discover=1
