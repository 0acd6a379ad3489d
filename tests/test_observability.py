"""Issue 17 part A: metrics (/metrics, summed over processes), health (/healthz, /readyz), structured
logs that never hold a secret or a message text, and Sentry only when SENTRY_DSN is set."""

import asyncio
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path

import django.db
import pytest
import sentry_sdk
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from prometheus_client.parser import text_string_to_metric_families
from structlog.stdlib import ProcessorFormatter
from websockets.asyncio.client import connect as ws_connect

from accounts.models import User
from config.asgi import application
from core import health, logs, metrics, tracking
from messaging import consumers
from presence import services as presence
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import APP, ROOT, UVICORN_OPTIONS, free_port, server_env, wait_for_port, wait_until
from tests.sockets import TIMEOUT, connect, receive_type

TOKEN = "metrics-token-" + uuid.uuid4().hex


# -- helpers --------------------------------------------------------------------------------------


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(parsed: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for n, have, v in parsed if n == name and all(have.get(k) == w for k, w in labels.items()))


def call(url: str, *, data: dict | None = None, headers: dict | None = None, opener=None) -> tuple[int, dict, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=60) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class Servers:
    """Real uvicorn processes as in tests/conftest.py's LiveServers, with their stderr (the logs)
    kept in files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, **env: str) -> str:
        port = free_port()
        log = self.directory / f"server-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS, APP],
                cwd=ROOT,
                env=server_env() | env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.processes.append(process)
        self.logs.append(log)
        wait_for_port(port, process, timeout=90)  # a bound: starting is slow on a loaded machine
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def servers(transactional_db, tmp_path):
    started = Servers(tmp_path)
    yield started
    started.stop()


async def next_frame(socket, frame_type: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))  # bounds, on a loaded box
        if frame["type"] == frame_type:
            return frame


# -- two server processes: metrics summed, health, and what their logs never hold -----------------


@pytest.mark.multiprocess
def test_metrics_move_and_add_up_over_two_processes_and_the_logs_hold_no_secret(servers, make_user, tmp_path):
    metrics_dir = tmp_path / "metrics"
    common = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": TOKEN,
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        "HEALTH_CHECK_SECONDS": "30",  # a bound on a loaded machine, not a measurement
    }
    first = servers.start(PARLEY_WORKER="web-0", **common)
    second = servers.start(PARLEY_WORKER="web-1", **common)
    secrets: dict[str, str] = {}
    texts = {
        "sent": "socket-sent-text-" + uuid.uuid4().hex,
        "edited": "socket-edited-text-" + uuid.uuid4().hex,
        "rest": "rest-sent-text-" + uuid.uuid4().hex,
    }

    # Sign up (REST) and sign in on the web page (session cookie), then a failed sign-in.
    password = secrets["password"] = "Ada-password-" + uuid.uuid4().hex
    status, _, _ = call(
        f"{first}/api/v1/auth/signup/", data={"username": "ada", "email": "a@x.io", "password": password}
    )
    assert status == 201
    cookies = CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    page = browser.open(f"{first}/login/", timeout=60).read().decode()
    csrf_field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": "ada", "password": password, "csrfmiddlewaretoken": csrf_field})
    browser.open(urllib.request.Request(f"{first}/login/", data=form.encode()), timeout=60).read()
    jar = {cookie.name: cookie.value for cookie in cookies}
    assert "sessionid" in jar, "the web sign-in did not sign in"
    secrets |= {"session": jar["sessionid"], "csrf cookie": jar["csrftoken"], "csrf field": csrf_field}
    wrong = secrets["wrong password"] = "Wrong-password-" + uuid.uuid4().hex
    assert call(f"{second}/api/v1/auth/token/", data={"username": "ada", "password": wrong})[0] == 401

    # JWTs and tickets, over both servers.
    ada = User.objects.get(username="ada")
    bob = make_user("bob")
    room = room_create(creator=ada, name="Metrics", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    status, headers, body = call(
        f"{first}/api/v1/auth/token/",
        data={"username": "ada", "password": password},
        headers={"X-Request-ID": "req-ada-1"},
    )
    assert status == 200 and headers["x-request-id"] == "req-ada-1"
    ada_tokens = json.loads(body)
    bob_tokens = json.loads(
        call(f"{second}/api/v1/auth/token/", data={"username": "bob", "password": "correct-horse-battery"})[2]
    )
    secrets |= {"ada access": ada_tokens["access"], "ada refresh": ada_tokens["refresh"]}
    secrets |= {"bob access": bob_tokens["access"], "bob refresh": bob_tokens["refresh"]}

    def ticket(base: str, access: str) -> str:
        status, headers, body = call(
            f"{base}/api/v1/auth/ws-ticket/", data={}, headers={"Authorization": f"Bearer {access}"}
        )
        assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])  # one was made
        return json.loads(body)["ticket"]

    ada_ticket = secrets["ada ticket"] = ticket(first, ada_tokens["access"])
    bob_ticket = secrets["bob ticket"] = ticket(second, bob_tokens["access"])

    def scrape(base: str) -> list:
        status, _, body = call(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        return samples(body.decode())

    async def chat() -> None:
        async with (
            ws_connect(first.replace("http", "ws", 1) + f"/ws/?ticket={ada_ticket}") as ada_socket,
            ws_connect(second.replace("http", "ws", 1) + f"/ws/?ticket={bob_ticket}") as bob_socket,
        ):
            await next_frame(ada_socket, "session.ready")
            await next_frame(bob_socket, "session.ready")
            # Ada (process 1) sends and edits over her socket; Bob (process 2) receives both.
            key = str(uuid.uuid4())
            await ada_socket.send(
                json.dumps(
                    {"type": "message.send", "room": str(room.pk), "content": texts["sent"], "client_msg_id": key}
                )
            )
            ack = await next_frame(ada_socket, "message.ack")
            assert (await next_frame(bob_socket, "message.new"))["message"]["content"] == texts["sent"]
            edit = {"type": "message.edit", "room": str(room.pk), "id": ack["id"], "content": texts["edited"]}
            await ada_socket.send(json.dumps(edit))
            assert (await next_frame(bob_socket, "message.edit"))["message"]["content"] == texts["edited"]
            # Bob sends over REST on process 2; Ada's socket on process 1 gets it.
            status, _, _ = await asyncio.to_thread(
                call,
                f"{second}/api/v1/rooms/{room.pk}/messages/",
                data={"content": texts["rest"], "client_msg_id": str(uuid.uuid4())},
                headers={"Authorization": f"Bearer {bob_tokens['access']}"},
            )
            assert status == 201
            while (await next_frame(ada_socket, "message.new"))["message"]["content"] != texts["rest"]:
                pass
            await ada_socket.send(json.dumps({"type": "no.such.frame"}))
            assert (await next_frame(ada_socket, "error"))["code"] == "unknown_type"

            # Scraped from either process, the figures are those of both. Each process writes its
            # per-frame and per-event counts once a second (core.metrics' tally): wait for all.
            def check(parsed: list) -> None:
                assert value(parsed, "parley_connections_open", transport="socket") == 2
                assert value(parsed, "parley_connections_total", transport="socket") == 2
                assert value(parsed, "parley_frames_received_total", type="message.send") == 1
                assert value(parsed, "parley_frames_received_total", type="message.edit") == 1
                assert value(parsed, "parley_frames_received_total", type="unknown") == 1
                assert value(parsed, "parley_frames_sent_total", type="message.ack") == 1
                assert value(parsed, "parley_frames_sent_total", type="session.ready") == 2
                assert value(parsed, "parley_send_batch_size_count") == 1
                assert value(parsed, "parley_send_batch_size_sum") == 1
                # Three numbered changes reached a socket on each process (its own, and the other's).
                assert value(parsed, "parley_event_deliveries_total", event="room.sequenced") >= 6
                assert value(parsed, "parley_bus_events_published_total", worker="web-0") >= 2
                assert value(parsed, "parley_bus_events_published_total", worker="web-1") >= 1
                assert value(parsed, "parley_bus_events_received_total", worker="web-0") >= 1
                assert value(parsed, "parley_bus_events_received_total", worker="web-1") >= 2
                assert value(parsed, "parley_presence_transitions_total", status="online") >= 2
                route = "api/v1/auth/token/"
                assert value(parsed, "parley_http_requests_total", route=route, method="POST", status="200") == 2
                assert value(parsed, "parley_http_requests_total", route=route, method="POST", status="401") == 1
                assert value(parsed, "parley_http_request_duration_seconds_count", route=route) == 3
                assert value(parsed, "parley_errors_total", transport="http") >= 1  # the failed sign-in
                assert value(parsed, "parley_message_partitions_ahead") >= 1
                assert any(name == "parley_db_pool_max" for name, _, _ in parsed)  # sampled every 5 s

            def moved() -> bool:
                try:
                    for parsed in (scrape(first), scrape(second)):
                        check(parsed)
                except AssertionError:
                    return False
                return True

            await asyncio.to_thread(wait_until, moved, timeout=60, what="the chat's figures in /metrics")
            for parsed in (scrape(first), scrape(second)):
                check(parsed)  # again, for a clear failure if a figure moved back

    asyncio.run(chat())

    def closed() -> bool:
        parsed = scrape(second)
        return value(parsed, "parley_connections_open", transport="socket") == 0

    wait_until(closed, timeout=60, what="both sockets counted closed")
    parsed = scrape(second)
    assert value(parsed, "parley_disconnects_total", transport="socket") == 2

    # /metrics is a 404 without the token (and with a wrong one); health answers without one.
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, _, body = call(f"{first}/metrics", headers=headers)
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert call(f"{first}/healthz")[:1] == (200,)
    status, _, body = call(f"{second}/readyz")
    assert status == 200 and json.loads(body) == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok", "archive": "ok", "partitions": "ok"},
    }

    # The logs: structured, with the request id, and never a secret or a message text.
    servers.stop()
    output = "\n".join(log.read_text(errors="replace") for log in servers.logs)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert any(line.get("request_id") == "req-ada-1" and line.get("status") == 200 for line in requests)
    assert any(line.get("route") == "login/" and line.get("method") == "POST" for line in requests)
    assert all({"timestamp", "level", "logger"} <= line.keys() for line in lines)
    for name, secret in (secrets | texts).items():
        assert secret not in output, f"the logs hold the {name}"


# -- health in-process: a dependency stopped ------------------------------------------------------


async def get(path: str, headers: list | None = None) -> tuple[int, dict]:
    communicator = HttpCommunicator(application, "GET", path, headers=headers or [])
    response = await communicator.get_response(timeout=TIMEOUT)
    body = response["body"]
    return response["status"], json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_readyz_names_redis_when_it_is_stopped(settings):
    settings.HEALTH_CHECK_SECONDS = 30  # a bound on a loaded machine: the healthy checks must pass
    stopped = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: a stopped Redis
    settings.REDIS_CHANNEL_URLS = [stopped]
    status, body = await get("/readyz")
    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {"postgres": "ok", "redis": "fail", "archive": "ok", "partitions": "ok"},
    }
    assert (await get("/healthz")) == (200, {"status": "ok", "worker": metrics.worker()})


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_readyz_names_postgres_when_it_is_stopped_and_reveals_nothing(monkeypatch, settings):
    settings.HEALTH_CHECK_SECONDS = 30
    from core import asyncdb

    port = free_port()  # nothing listens there: a stopped PostgreSQL
    real = asyncdb.connection_params
    monkeypatch.setattr(asyncdb, "connection_params", lambda: real() | {"host": "127.0.0.1", "port": port})
    status, body = await get("/readyz")
    assert status == 503
    assert body["checks"] == {"postgres": "fail", "redis": "ok", "archive": "ok", "partitions": "unknown"}
    assert str(port) not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_readyz_fails_when_tomorrows_partition_is_missing(monkeypatch, settings):
    settings.HEALTH_CHECK_SECONDS = 30
    monkeypatch.setattr(health, "today", lambda: health.dt.date(2999, 1, 1))  # no partitions that far ahead
    status, body = await get("/readyz")
    assert (status, body["checks"]["partitions"], body["checks"]["postgres"]) == (503, "fail", "ok")


@pytest.mark.asyncio
@pytest.mark.django_db
async def test_metrics_is_a_404_without_a_token_configured_and_parses_with_one(settings):
    settings.METRICS_TOKEN = ""
    status, body = await get("/metrics", [(b"authorization", b"Bearer ")])
    assert (status, body) == (404, {"error": {"code": "not_found", "message": "Not found."}})
    settings.METRICS_TOKEN = TOKEN
    status, body = await get("/metrics", [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert status == 200
    assert value(samples(body["text"]), "parley_connections_open", transport="sse") >= 0


# -- logs in-process: the socket's context -------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_sockets_logs_name_the_socket_user_and_room(make_user, monkeypatch, capsys):
    import logging

    from django.conf import settings

    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Logs", kind=Room.Kind.PRIVATE)

    def outage(**kwargs):
        raise django.db.OperationalError("server closed the connection; password=hunter2")

    monkeypatch.setattr(presence, "typing_notify", outage)
    handler = logging.StreamHandler(sys.stderr)
    structured = settings.LOGGING["formatters"]["structured"]
    handler.setFormatter(
        ProcessorFormatter(foreign_pre_chain=structured["foreign_pre_chain"], processors=structured["processors"])
    )
    logging.getLogger(consumers.__name__).addHandler(handler)
    try:
        socket, _ = await connect(ada)
        await socket.send_json_to({"type": "typing", "room": str(room.pk)})
        assert (await receive_type(socket, "error"))["code"] == "unavailable"
        await socket.disconnect()
    finally:
        logging.getLogger(consumers.__name__).removeHandler(handler)
    assert settings.LOG_FORMAT == "json"
    line = next(
        json.loads(text) for text in capsys.readouterr().err.splitlines() if text.startswith("{") and "typing" in text
    )
    assert line["user_id"] == ada.pk and line["room_id"] == str(room.pk) and len(line["socket_id"]) == 32
    assert "hunter2" not in json.dumps(line) and "password=[redacted]" in line["event"]


def test_redaction_of_keys_urls_tokens_and_tracebacks():
    event = logs.redact(
        None,
        "info",
        {
            "event": "lost redis://:pw123@cache:6379/0 after /ws/?ticket=abcdef0123 Bearer eyJhbGciOi.eyJzdWIiOi.sig",
            "password": "pw",
            "content": "hello",
            "user_id": 7,
        },
    )
    assert event == {
        "event": "lost redis://:[redacted]@cache:6379/0 after /ws/?ticket=[redacted] Bearer [redacted]",
        "password": "[redacted]",
        "content": "[redacted]",
        "user_id": 7,
    }
    assert logs.request_id_of("abc-123") == "abc-123"
    assert len(logs.request_id_of("no spaces or\nnewlines")) == 32


# -- Sentry ---------------------------------------------------------------------------------------


class CapturingTransport(sentry_sdk.transport.Transport):
    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.envelopes: list = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)


def _api_failure_request(monkeypatch, make_user, secret: str):
    """A REST send whose service crashes (a 500), carrying `secret` as its content."""
    from django.test import Client

    from messaging import api as messaging_api

    ada = make_user("ada")
    room = room_create(creator=ada, name="Crash", kind=Room.Kind.PRIVATE)

    def crash(**kwargs):
        content = kwargs.get("content")  # a local holding the body: never sent
        raise RuntimeError(f"crashed ({len(content)} characters)")

    monkeypatch.setattr(messaging_api.services, "message_send", crash)
    client = Client(raise_request_exception=False)
    client.force_login(ada)
    response = client.post(
        f"/api/v1/rooms/{room.pk}/messages/?ticket=query-secret",
        {"content": secret, "client_msg_id": str(uuid.uuid4())},
        content_type="application/json",
        HTTP_X_TICKET="header-secret",
    )
    assert response.status_code == 500


@pytest.mark.django_db
def test_without_sentry_dsn_nothing_is_initialised_or_sent(monkeypatch, make_user, settings):
    assert settings.SENTRY_ENABLED is False
    assert not sentry_sdk.get_client().is_active()

    def forbidden(*args, **kwargs):
        raise AssertionError("sentry_sdk.init was called without a DSN")

    monkeypatch.setattr(sentry_sdk, "init", forbidden)
    assert tracking.init("") is False
    _api_failure_request(monkeypatch, make_user, "body-" + uuid.uuid4().hex)
    assert not sentry_sdk.get_client().is_active()


@pytest.mark.django_db
def test_with_sentry_dsn_errors_are_sent_without_bodies_secrets_or_locals(monkeypatch, make_user):
    transport = CapturingTransport()
    assert tracking.init("https://public@sentry.invalid/1", transport=transport, default_integrations=True)
    try:
        secret = "message-body-" + uuid.uuid4().hex
        _api_failure_request(monkeypatch, make_user, secret)
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.init()  # no DSN: inactive again
    events = [item.payload.json for envelope in transport.envelopes for item in envelope.items if item.type == "event"]
    assert events, "the crash was not reported"
    sent = json.dumps(events)
    assert "RuntimeError" in sent
    for leaked in (secret, "query-secret", "header-secret", '"vars"'):
        assert leaked not in sent


# -- processes: serve.py's dead workers, Celery's task runs ---------------------------------------


def test_serve_removes_a_dead_workers_live_gauges_only(tmp_path, monkeypatch):
    import serve  # scripts/serve.py (tests/conftest.py puts scripts/ on the path)

    names = ["gauge_livesum_123.db", "gauge_liveall_123.db", "gauge_max_123.db", "counter_123.db"]
    names += ["gauge_livesum_1234.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    serve.mark_dead(123)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["gauge_max_123.db", "counter_123.db", "gauge_livesum_1234.db"]
    )


def test_celery_task_runs_failures_and_durations_are_counted():
    from celery import signals
    from prometheus_client import REGISTRY

    from core import metrics

    metrics.connect_celery()

    class Task:
        name = "tests.observability.sample"

    def runs(outcome: str) -> float:
        return REGISTRY.get_sample_value("parley_celery_task_runs_total", {"task": Task.name, "outcome": outcome}) or 0

    before = runs("success"), runs("failure")
    for task_id, state in (("one", "SUCCESS"), ("two", "FAILURE")):
        signals.task_prerun.send(sender=Task, task_id=task_id, task=Task)
        signals.task_postrun.send(sender=Task, task_id=task_id, task=Task, state=state)
    assert (runs("success"), runs("failure")) == (before[0] + 1, before[1] + 1)
    count = REGISTRY.get_sample_value("parley_celery_task_duration_seconds_count", {"task": Task.name})
    assert count is not None and count >= 2
