"""The simulator app around the engine (docs/protocol.md "Simulations"): a board's document as a
design and its problems per element, templates that make boards, starting runs (access, quotas,
invalid designs), running them (the Celery task, in process here: tests/test_simulator_worker.py
runs a real worker), progress and results, cancel, live faults, export and comparison, the socket
frames."""

import csv
import io
import uuid

import pytest
from channels.db import database_sync_to_async

from boards.models import BoardUpdate
from boards.services import board_create, board_update_apply
from rooms.models import Room
from simulator import services
from simulator.engine import Design, Fault, simulate
from simulator.engine.templates import TEMPLATES
from simulator.models import SimulationCommand, SimulationRun
from simulator.tasks import run_simulation
from tests.boards_helpers import Client
from tests.conftest import client_for, room_with
from tests.sockets import connect, receive_type

V1 = "/api/v1"


@pytest.fixture
def cast(db, make_user):
    owner, admin, member, viewer, outsider = (make_user(n) for n in ("owner", "admin", "member", "viewer", "outsider"))
    room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={admin: "admin", member: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "admin": admin, "member": member, "viewer": viewer, "outsider": outsider}


def template_board(cast, template="url-shortener", user="member"):
    response = client_for(cast[user]).post(
        f"{V1}/rooms/{cast['room'].pk}/boards/from-template/", {"template": template}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def draw(board, user, client: Client, element_id: str, **props) -> None:
    board_update_apply(
        user=user, board_id=board.pk, update=client.edit(element_id, **props), client_update_id=uuid.uuid4()
    )


def start(cast, board_id, user="member", **data):
    return client_for(cast[user]).post(f"{V1}/boards/{board_id}/simulations/", data, format="json")


def small(**extra):
    """A short, unpaced run."""
    return {"duration_s": 3, "seed": 7, "speed": None, **extra}


# -- designs ----------------------------------------------------------------------------------------


def test_the_design_is_read_from_the_board_and_problems_are_keyed_by_element(cast):
    member = cast["member"]
    board = board_create(user=member, room_id=cast["room"].pk, title="Design")
    ada = Client()
    draw(
        board, member, ada, "users", type="component", kind="client", params={"rate": 100}, x=0, y=0, text="Users\nweb"
    )
    draw(board, member, ada, "api", type="component", kind="service", params={"instances": -1}, x=300, y=0)
    draw(board, member, ada, "db", type="component", kind="database", params={}, x=600, y=0)
    draw(board, member, ada, "mystery", type="component", kind="teleporter", x=600, y=300)
    draw(board, member, ada, "a1", type="arrow", **{"from": "users", "to": "api"})
    draw(board, member, ada, "a2", type="arrow", **{"from": "api", "to": "db"})
    draw(board, member, ada, "a3", type="arrow", **{"from": "db", "to": "api"})  # a loop with no queue
    draw(board, member, ada, "loose", type="arrow", **{"from": "api", "to": None})  # points at nothing
    draw(board, member, ada, "note", type="sticky", text="remember the cache")
    draw(board, member, ada, "pointer", type="arrow", **{"from": "note", "to": None})  # an annotation

    body = client_for(cast["viewer"]).get(f"{V1}/boards/{board.pk}/design/").json()

    assert body["valid"] is False and body["sequence"] == 10
    assert [c["id"] for c in body["design"]["components"]] == ["api", "db", "mystery", "users"]
    users = next(c for c in body["design"]["components"] if c["id"] == "users")
    assert users == {"id": "users", "kind": "client", "params": {"rate": 100}, "label": "Users", "x": 0, "y": 0}
    assert {k["id"] for k in body["design"]["connectors"]} == {"a1", "a2", "a3", "loose"}  # not the annotation
    codes = {(p["element_id"], p["code"]) for p in body["problems"]}
    assert ("api", "invalid_param") in codes  # instances = -1
    assert ("mystery", "unknown_kind") in codes
    assert ("loose", "dangling_connector") in codes
    assert ("api", "cycle_without_queue") in codes
    api_problems = [p["message"] for p in body["problems"] if p["element_id"] == "api"]
    assert any("instances" in m for m in api_problems)

    # Starting it is `invalid`, naming each problem.
    refused = start(cast, board.pk, **small())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid" and "cannot run" in error["message"]
    assert any(line.startswith("loose:") for line in error["fields"]["design"])
    assert not SimulationRun.objects.exists()


def test_templates_palette_and_boards_made_from_templates_validate_clean(cast):
    api = client_for(cast["member"])
    palette = api.get(f"{V1}/simulator/palette/").json()
    assert {k["kind"] for k in palette["kinds"]} >= {"client", "service", "cache", "database", "queue"}
    listed = api.get(f"{V1}/simulator/templates/").json()["results"]
    assert [t["id"] for t in listed] == [t["id"] for t in TEMPLATES]

    for template in TEMPLATES:
        board = template_board(cast, template["id"])
        assert board["title"] == template["title"] and board["last_sequence"] == 1
        assert BoardUpdate.objects.filter(board_id=board["id"]).count() == 1  # one numbered, stored update
        design = api.get(f"{V1}/boards/{board['id']}/design/").json()
        assert design["valid"], design["problems"]
        assert not [p for p in design["problems"] if p["severity"] == "error"]
        by_id = {c["id"]: c for c in design["design"]["components"]}
        for component in template["design"]["components"]:
            assert by_id[component["id"]]["kind"] == component["kind"]
            assert by_id[component["id"]]["params"] == component["params"]
        connectors = {(k["from"], k["to"]) for k in design["design"]["connectors"]}
        assert connectors == {(k["from"], k["to"]) for k in template["design"]["connectors"]}
        elements = api.get(f"{V1}/boards/{board['id']}/").json()["elements"]
        assert {e["type"] for e in elements} == {"component", "arrow"}

    named = api.post(
        f"{V1}/rooms/{cast['room'].pk}/boards/from-template/", {"template": "chat", "title": "Us"}, format="json"
    )
    assert named.status_code == 201 and named.json()["title"] == "Us"
    unknown = api.post(f"{V1}/rooms/{cast['room'].pk}/boards/from-template/", {"template": "nope"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["fields"]["template"]
    viewer = client_for(cast["viewer"]).post(
        f"{V1}/rooms/{cast['room'].pk}/boards/from-template/", {"template": "chat"}, format="json"
    )
    assert viewer.status_code == 403
    outsider = client_for(cast["outsider"]).post(
        f"{V1}/rooms/{cast['room'].pk}/boards/from-template/", {"template": "chat"}, format="json"
    )
    assert outsider.status_code == 404


# -- starting: access and quotas -------------------------------------------------------------------


def test_viewers_watch_but_do_not_start_and_outsiders_see_nothing(cast):
    board = template_board(cast)
    refused = start(cast, board["id"], user="viewer", **small())
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    hidden = start(cast, board["id"], user="outsider", **small())
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "not_found")
    assert not SimulationRun.objects.exists()

    run = start(cast, board["id"], **small()).json()
    assert client_for(cast["viewer"]).get(f"{V1}/simulations/{run['id']}/").status_code == 200
    assert (
        client_for(cast["viewer"]).get(f"{V1}/boards/{board['id']}/simulations/").json()["results"][0]["id"]
        == run["id"]
    )
    assert client_for(cast["outsider"]).get(f"{V1}/simulations/{run['id']}/").status_code == 404
    assert client_for(cast["outsider"]).get(f"{V1}/boards/{board['id']}/simulations/").status_code == 404
    for path in ("cancel/", "faults/"):
        viewer = client_for(cast["viewer"]).post(f"{V1}/simulations/{run['id']}/{path}", {}, format="json")
        assert (viewer.status_code, viewer.json()["error"]["code"]) == (403, "forbidden")
        outsider = client_for(cast["outsider"]).post(f"{V1}/simulations/{run['id']}/{path}", {}, format="json")
        assert outsider.status_code == 404


def test_quotas_concurrent_runs_duration_requests_and_wall_time(cast, settings):
    settings.SIM_MAX_CONCURRENT_RUNS = 2
    settings.SIM_MAX_DURATION_S = 100
    settings.SIM_MAX_REQUESTS = 100_000
    settings.SIM_MAX_WALL_S = 50
    board = template_board(cast)  # 2,000 requests a second

    too_long = start(cast, board["id"], duration_s=101, speed=None)
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (403, "quota_exceeded")
    assert "at most 100 seconds" in too_long.json()["error"]["message"]
    too_many = start(cast, board["id"], duration_s=60, speed=None)  # about 120,000 requests
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (403, "quota_exceeded")
    assert "120,000 requests" in too_many.json()["error"]["message"]
    capped = start(cast, board["id"], duration_s=60, speed=None, max_requests=1_000_001)
    assert capped.json()["error"]["fields"]["max_requests"]
    too_slow = start(cast, board["id"], duration_s=40, speed=0.5)  # 80 s of a worker
    assert too_slow.json()["error"]["fields"]["speed"]
    for bad in ({"duration_s": -1}, {"duration_s": "long"}, {"seed": 1.5}, {"speed": 0}, {"faults": "x"}):
        response = start(cast, board["id"], **{**small(), **bad})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid"), bad
    unknown = start(cast, board["id"], **small(faults=[{"kind": "kill", "component_id": "nowhere"}]))
    assert "nowhere" in unknown.json()["error"]["message"]
    assert not SimulationRun.objects.exists()

    first = start(cast, board["id"], duration_s=10, speed=None, max_requests=1_000_001 - 1_000_000)
    assert first.status_code == 201 and first.json()["max_requests"] == 1
    assert start(cast, board["id"], **small()).status_code == 201
    third = start(cast, board["id"], **small())
    assert (third.status_code, third.json()["error"]["code"]) == (403, "quota_exceeded")
    assert "2 simulations" in third.json()["error"]["message"]
    assert start(cast, board["id"], user="owner", **small()).status_code == 201  # per user
    active = client_for(cast["viewer"]).get(f"{V1}/boards/{board['id']}/simulations/", {"active": 1}).json()
    assert [r["status"] for r in active["results"]] == ["queued"] * 3
    # One finishes (here: cancelled while queued): there is room again.
    assert client_for(cast["member"]).post(f"{V1}/simulations/{first.json()['id']}/cancel/").json()["status"] == (
        "cancelled"
    )
    assert start(cast, board["id"], **small()).status_code == 201


# -- running ----------------------------------------------------------------------------------------


def test_a_run_executes_streams_progress_and_stores_results(cast, events, django_capture_on_commit_callbacks):
    board = template_board(cast)
    with django_capture_on_commit_callbacks(execute=False):  # not queued to a worker: run below
        created = start(cast, board["id"], **small(faults=[{"kind": "kill", "component_id": "api", "at_s": 1}]))
    assert created.status_code == 201
    run = created.json()
    assert run["status"] == "queued" and run["seed"] == 7 and run["started_by"]["username"] == "member"
    assert run["faults"][0]["kind"] == "kill" and run["board_sequence"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert run_simulation.apply(args=[run["id"]]).get() == "done"

    stored = SimulationRun.objects.get(pk=run["id"])
    assert stored.status == "done" and stored.started_at and stored.finished_at and stored.results
    assert stored.results["meta"]["seed"] == 7 and stored.results["meta"]["simulated_s"] == 3
    assert stored.progress["fraction"] == 1.0
    detail = client_for(cast["viewer"]).get(f"{V1}/simulations/{run['id']}/").json()
    assert detail["results"]["bottleneck"]["component_id"] and detail["design"]["components"]
    assert detail["summary"]["end_to_end"]["requests"] > 0 and "histogram_ms" not in detail["summary"]["end_to_end"]

    frames = events.frames(group=f"board.{board['id']}")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "simulation.progress" and kinds[-1] == "simulation.finished"  # started went out earlier
    progress = [f for f in frames if f["type"] == "simulation.progress" and f["progress"]]
    assert progress and progress[-1]["progress"]["fraction"] == 1.0 and progress[-1]["run"] == run["id"]
    assert "components" in progress[-1]["progress"] and "end_to_end" in progress[-1]["progress"]
    # Traffic along each arrow (the engine's): reads to the cache, writes to the database.
    connectors = progress[-1]["progress"]["connectors"]
    assert set(connectors) == {k["id"] for k in stored.design["connectors"]}
    assert connectors["api->cache"]["rps"] > 5 * connectors["api->db"]["rps"] > 0
    assert detail["summary"]["connectors"] == detail["results"]["connectors"]
    finished = frames[-1]
    assert finished["status"] == "done" and finished["summary"]["bottleneck"]["component_id"]

    # The worker's figures are the engine's for this seed, whatever the pace of the run.
    engine = simulate(
        Design.from_json(stored.design), seed=7, duration_s=3, faults=[Fault("kill", "api", at_s=1)]
    ).to_json()
    assert engine["end_to_end"] == stored.results["end_to_end"]
    assert engine["components"] == stored.results["components"]

    # The same seed gives the same figures (another run, paced this time, compared side by side).
    with django_capture_on_commit_callbacks(execute=False):
        again = start(
            cast, board["id"], **small(speed=1000, faults=[{"kind": "kill", "component_id": "api", "at_s": 1}])
        ).json()
    run_simulation.apply(args=[again["id"]])
    compared = client_for(cast["viewer"]).get(f"{V1}/simulations/compare/", {"a": run["id"], "b": again["id"]}).json()
    rows = {row["metric"]: row for row in compared["end_to_end"]}
    assert rows["requests"]["a"] == rows["requests"]["b"] and rows["requests"]["delta"] == 0
    assert rows["p99_ms"]["delta"] == 0 and compared["components"]["db"]["utilisation"]["delta"] == 0
    assert compared["a"]["id"] == run["id"] and compared["b"]["results"]

    # Exports: the JSON file and the CSV tables.
    exported = client_for(cast["viewer"]).get(f"{V1}/simulations/{run['id']}/export/")
    assert exported["Content-Disposition"].startswith("attachment")
    body = exported.json()
    assert body["format"] == "parley.simulation" and body["simulation"]["results"]["meta"]["seed"] == 7
    table = client_for(cast["viewer"]).get(f"{V1}/simulations/{run['id']}/export/csv/")
    assert table["Content-Type"].startswith("text/csv")
    rows_csv = list(csv.reader(io.StringIO(table.content.decode())))
    assert rows_csv[0][:3] == ["component_id", "kind", "arrivals"]
    assert {r[0] for r in rows_csv[1:]} == {"users", "dns", "lb", "api", "cache", "db", "(end to end)"}
    series = client_for(cast["viewer"]).get(f"{V1}/simulations/{run['id']}/export/csv/", {"table": "series"})
    lines = list(csv.reader(io.StringIO(series.content.decode())))
    assert lines[0][:4] == ["second", "throughput_rps", "failures_rps", "p99_ms"] and len(lines) == 1 + 3
    assert "api->cache.rps" in lines[0] and "db.utilisation" in lines[0]


def test_cancel_and_live_faults(cast, events, django_capture_on_commit_callbacks):
    board = template_board(cast)
    run = start(cast, board["id"], **small()).json()

    # Faults: checked against the run's design; stored for the worker.
    api = client_for(cast["member"])
    bad = api.post(f"{V1}/simulations/{run['id']}/faults/", {"kind": "partition", "component_id": "api"}, format="json")
    assert bad.status_code == 400 and "cache" in bad.json()["error"]["message"]
    ok = api.post(
        f"{V1}/simulations/{run['id']}/faults/",
        {"kind": "latency", "component_id": "db", "latency_ms": 50},
        format="json",
    )
    assert ok.status_code == 201 and ok.json()["fault"]["at_s"] is None  # now, when the worker takes it

    # Only the starter and the room's owners and admins cancel.
    theirs = start(cast, board["id"], user="owner", **small()).json()
    refused = api.post(f"{V1}/simulations/{theirs['id']}/cancel/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")

    # Running: the flag is set; the worker stops at its next report and keeps the figures so far.
    SimulationRun.objects.filter(pk=run["id"]).update(status="running")
    answer = api.post(f"{V1}/simulations/{run['id']}/cancel/").json()
    assert answer["status"] == "running"
    stored = SimulationRun.objects.get(pk=run["id"])
    assert stored.cancel_requested_at and stored.cancelled_by == cast["member"]

    # An admin cancels someone else's queued run at once, and the board hears it.
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = client_for(cast["admin"]).post(f"{V1}/simulations/{theirs['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"]["username"] == "admin"
    finished = events.frames("simulation.finished")
    assert finished and finished[0]["status"] == "cancelled" and finished[0]["run"] == theirs["id"]
    mine = theirs
    late = api.post(f"{V1}/simulations/{mine['id']}/faults/", {"kind": "kill", "component_id": "api"}, format="json")
    assert (late.status_code, late.json()["error"]["code"]) == (409, "finished")
    # The worker never runs a cancelled run.
    assert run_simulation.apply(args=[mine["id"]]).get() == "not queued"


def test_a_worker_applies_pending_faults_and_stops_when_cancelled(cast, events, django_capture_on_commit_callbacks):
    board = template_board(cast)
    # Paced (10x): the worker reports every quarter of a second of wall time, 2.5 simulated seconds apart.
    run = start(cast, board["id"], duration_s=30, seed=3, speed=10).json()
    command = services.run_inject(
        user=cast["member"], run_id=run["id"], fault={"kind": "kill", "component_id": "api", "count": 3}
    )
    # Cancel as soon as the fault has been taken (the worker's first report after it).
    original = services.command_applied

    def applied_then_cancel(*args, **kwargs):
        original(*args, **kwargs)
        SimulationRun.objects.filter(pk=run["id"]).update(cancel_requested_at="2026-01-01T00:00:00Z")

    services.command_applied = applied_then_cancel
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert run_simulation.apply(args=[run["id"]]).get() == "cancelled"
    finally:
        services.command_applied = original
    stored = SimulationRun.objects.get(pk=run["id"])
    assert stored.results["meta"]["stopped_early"] is True and stored.results["meta"]["simulated_s"] < 30
    command.refresh_from_db()
    assert command.applied_at is not None and command.rejected == ""
    assert stored.faults[-1]["kind"] == "kill" and stored.faults[-1]["injected_by"] == cast["member"].pk
    fault_frames = events.frames("simulation.fault")
    assert fault_frames and fault_frames[0]["user"]["username"] == "member"
    assert events.frames("simulation.finished")[-1]["status"] == "cancelled"
    assert SimulationCommand.objects.filter(applied_at__isnull=True).count() == 0


def test_runs_without_a_worker_are_failed_by_the_reaper(cast, settings):
    from django.utils import timezone

    board = template_board(cast)
    run = start(cast, board["id"], **small()).json()
    SimulationRun.objects.filter(pk=run["id"]).update(
        status="running", heartbeat_at=timezone.now() - timezone.timedelta(seconds=settings.SIM_STALE_AFTER_S + 1)
    )
    assert services.runs_reap() == 1
    stored = SimulationRun.objects.get(pk=run["id"])
    assert stored.status == "failed" and "stopped reporting" in stored.error


# -- the socket ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_runs_start_cancel_and_take_faults_over_the_socket(make_user, events):
    def build():
        owner, member, viewer = (make_user(n) for n in ("owner", "member", "viewer"))
        room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
        board = services.board_from_template(user=member, room_id=room.pk, template_id="chat")
        return owner, member, viewer, board

    owner, member, viewer, board = await database_sync_to_async(build)()
    sockets = {name: (await connect(user))[0] for name, user in (("member", member), ("viewer", viewer))}
    for socket in sockets.values():
        await socket.send_json_to({"type": "board.join", "board": str(board.pk)})
        await receive_type(socket, "board.state")

    # Queued to a queue no worker reads: the run stays queued while we look at it.
    from django.test import override_settings

    with override_settings(SIM_CELERY_QUEUE=f"nobody-{uuid.uuid4().hex[:8]}"):
        await sockets["member"].send_json_to({"type": "simulation.start", "board": str(board.pk), "duration_s": 5})
        ack = await receive_type(sockets["member"], "simulation.start.ack")
    run_id = ack["simulation"]["id"]
    assert ack["simulation"]["status"] == "queued" and ack["simulation"]["speed"] == 1.0
    started = await receive_type(sockets["viewer"], "simulation.started")
    assert started["run"] == run_id and started["simulation"]["started_by"]["username"] == "member"

    await sockets["viewer"].send_json_to({"type": "simulation.start", "board": str(board.pk)})
    refused = await receive_type(sockets["viewer"], "error")
    assert refused["code"] == "forbidden" and refused["ref"] is None
    await sockets["viewer"].send_json_to({"type": "simulation.cancel", "run": run_id})
    assert (await receive_type(sockets["viewer"], "error"))["code"] == "forbidden"

    fault = {"kind": "slow", "component_id": "postgres", "factor": 3}
    await sockets["member"].send_json_to({"type": "simulation.inject", "run": run_id, "fault": fault})
    injected = await receive_type(sockets["member"], "simulation.inject.ack")
    assert injected["fault"]["kind"] == "slow" and injected["run"] == run_id
    await sockets["member"].send_json_to({"type": "simulation.inject", "run": run_id, "fault": {"kind": "x"}})
    assert (await receive_type(sockets["member"], "error"))["code"] == "invalid"

    await sockets["member"].send_json_to({"type": "simulation.cancel", "run": run_id})
    cancelled = await receive_type(sockets["member"], "simulation.cancel.ack")
    assert cancelled["simulation"]["status"] == "cancelled"
    finished = await receive_type(sockets["viewer"], "simulation.finished")
    assert finished["run"] == run_id and finished["status"] == "cancelled"
    for socket in sockets.values():
        await socket.disconnect()


def test_the_openapi_schema_declares_every_field_of_the_simulation_payloads(cast, django_capture_on_commit_callbacks):
    """The schema test's world has no runs: check a real run's shapes against the schema here."""
    api = client_for(cast["member"])
    schemas = api.get(f"{V1}/schema/", {"format": "json"}).json()["components"]["schemas"]
    board = template_board(cast)
    with django_capture_on_commit_callbacks(execute=False):
        run = start(cast, board["id"], **small()).json()
    run_simulation.apply(args=[run["id"]])
    detail = api.get(f"{V1}/simulations/{run['id']}/").json()
    assert set(detail) == set(schemas["SimulationRunDetail"]["properties"])
    assert set(detail["summary"]) == set(schemas["SimulationSummary"]["properties"])
    listed = api.get(f"{V1}/boards/{board['id']}/simulations/").json()["results"][0]
    assert set(listed) == set(schemas["SimulationRun"]["properties"])
    design = api.get(f"{V1}/boards/{board['id']}/design/").json()
    assert set(design) == set(schemas["BoardDesign"]["properties"])
    ack = api.post(f"{V1}/simulations/{run['id']}/faults/", {"kind": "kill", "component_id": "api"}, format="json")
    assert ack.status_code == 409  # finished
    compared = api.get(f"{V1}/simulations/compare/", {"a": run["id"], "b": run["id"]}).json()
    assert set(compared) == set(schemas["SimulationCompare"]["properties"])
    assert set(compared["end_to_end"][0]) == set(schemas["SimulationCompareRow"]["properties"])
    exported = api.get(f"{V1}/simulations/{run['id']}/export/").json()
    assert set(exported) == set(schemas["SimulationExport"]["properties"])
