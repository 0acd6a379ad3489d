"""Simulations in a real Celery worker (docs/protocol.md "Simulations"): a run started over REST is
streamed to two sockets on the board as `simulation.progress` (from the worker process, through
Redis), takes a fault injected live, and is cancelled by one of them (the room's owner, who did not
start it); then a run started over the socket runs to its end and its results are stored.

The worker is `celery -A config worker --pool solo` on a queue of its own (SIM_CELERY_QUEUE), sharing
this test's database and Redis. Every wait is for a frame or a state, bounded, never a sleep."""

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from rooms.models import Room
from simulator import services
from simulator.models import SimulationRun
from tests.conftest import ROOT, client_for, room_with, server_env
from tests.sockets import connect, receive_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

BOUND = 60  # seconds for the worker to start and report (a bound, not a measurement)


@pytest.fixture
def worker(settings, tmp_path):
    queue = f"sim-test-{uuid.uuid4().hex[:8]}"
    settings.SIM_CELERY_QUEUE = queue
    log = tmp_path / "celery-worker.log"
    command = [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "--pool", "solo", "-Q", queue]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=server_env() | {"PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):
            print(log.read_text())


async def frame_of(socket, frame_type: str, *, run: str | None = None, where=lambda f: True) -> dict:
    """The next frame of `frame_type` (about `run`) satisfying `where`, within BOUND."""
    while True:
        frame = await socket.receive_json_from(timeout=BOUND)
        if frame["type"] == frame_type and (run is None or frame.get("run") == run) and where(frame):
            return frame


async def test_a_run_streams_to_two_sockets_takes_a_live_fault_and_one_cancels_it(worker, make_user):
    def build():
        owner, member = make_user("owner"), make_user("member")
        room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={member: "member"})
        board = services.board_from_template(user=member, room_id=room.pk, template_id="url-shortener")
        return owner, member, board

    owner, member, board = await database_sync_to_async(build)()
    sockets = [(await connect(user))[0] for user in (owner, member)]
    for socket in sockets:
        await socket.send_json_to({"type": "board.join", "board": str(board.pk)})
        await receive_type(socket, "board.state")

    # Started over REST by the member: paced (10 simulated seconds a second: a minute), long enough to be live.
    response = await sync_to_async(client_for(member).post)(
        f"/api/v1/boards/{board.pk}/simulations/", {"duration_s": 600, "speed": 10, "seed": 11}, format="json"
    )
    assert response.status_code == 201, response.json()
    run = response.json()["id"]
    for socket in sockets:
        assert (await frame_of(socket, "simulation.started", run=run))["simulation"]["status"] == "queued"
        live = await frame_of(socket, "simulation.progress", run=run, where=lambda f: f["progress"] is not None)
        assert live["status"] == "running" and live["progress"]["components"]["api"]["throughput_rps"] >= 0
        assert 0 < live["progress"]["fraction"] < 1

    # A fault injected live reaches the worker, which applies it and tells the board.
    await sockets[1].send_json_to(
        {"type": "simulation.inject", "run": run, "fault": {"kind": "kill", "component_id": "api", "count": 2}}
    )
    await receive_type(sockets[1], "simulation.inject.ack")
    for socket in sockets:
        applied = await frame_of(socket, "simulation.fault", run=run)
        assert applied["fault"]["kind"] == "kill" and applied["fault"]["at_s"] > 0
        assert applied["user"]["username"] == "member"

    # Progress keeps coming after it (a few a second; at most once: the row has the latest).
    later = await frame_of(sockets[0], "simulation.progress", run=run, where=lambda f: f["progress"] is not None)
    assert later["progress"]["faults"] and later["progress"]["faults"][0]["kind"] == "kill"

    # The room's owner cancels it (over the socket); both sockets hear it finish, cancelled.
    await sockets[0].send_json_to({"type": "simulation.cancel", "run": run})
    assert (await receive_type(sockets[0], "simulation.cancel.ack"))["run"] == run
    for socket in sockets:
        finished = await frame_of(socket, "simulation.finished", run=run)
        assert finished["status"] == "cancelled" and finished["summary"]["meta"]["stopped_early"] is True
        assert finished["simulation"]["cancelled_by"]["username"] == "owner"

    stored = await database_sync_to_async(SimulationRun.objects.get)(pk=run)
    assert stored.status == "cancelled" and stored.finished_at is not None
    assert stored.results["meta"]["stopped_early"] is True and 0 < stored.results["meta"]["simulated_s"] < 600
    assert stored.progress["t"] > 0 and stored.faults[-1]["injected_by"] == member.pk

    # A second run, started over the socket, unpaced: it runs to its end and its results are stored.
    await sockets[1].send_json_to(
        {"type": "simulation.start", "board": str(board.pk), "duration_s": 5, "speed": None, "seed": 5}
    )
    second = (await receive_type(sockets[1], "simulation.start.ack"))["simulation"]["id"]
    for socket in sockets:
        done = await frame_of(socket, "simulation.finished", run=second)
        assert done["status"] == "done" and done["summary"]["bottleneck"]["component_id"]
    stored = await database_sync_to_async(SimulationRun.objects.get)(pk=second)
    assert stored.status == "done" and stored.results["meta"]["simulated_s"] == 5
    for socket in sockets:
        await socket.disconnect()
