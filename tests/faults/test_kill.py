"""SIGKILL of a server process while its clients send: its sockets drop (no close frame can come
from a killed process: the one documented 1006), its clients reconnect and resend what was
unanswered with the same client_msg_id.

- A whole server (one of two uvicorn processes on their own ports): its clients move to the
  other; it is started again on its port 3 s later and serves new sockets.
- A worker of scripts/serve.py (two workers on one address): serve.py starts a new one at once;
  the clients reconnect to the same address."""

import asyncio
import time

import pytest

from tests.faults.harness import INTEGRITY, assert_none, assert_recovered, outage_scenario

# From the kill until every client sends successfully again through the other process: a socket
# notices the drop at once, reconnects after a jittered back-off (at most 1 s here) with a new
# ticket, and resends.
RECONNECT_BOUND = 3.0


@pytest.fixture(scope="module")
def killed(fault_db):
    return outage_scenario(
        "server_kill",
        "SIGKILL of one of 2 server processes, started again 3 s later",
        lambda s: s.kill(0),
        lambda s: s.start(0),
        outage=3,
        after=5,
        recovery_since="fault",
    )


def test_nothing_is_lost_duplicated_or_reordered(killed):
    assert_none(killed.problems(*INTEGRITY), "integrity")


def test_every_send_is_answered_within_10s(killed):
    assert_none(killed.problems("unanswered"), "unanswered sends")


def test_only_the_killed_process_drops_sockets_without_a_close_code(killed):
    assert_none(killed.problems("close_codes", "api_errors_are_json"), "closes and API errors")
    dropped = [c for c in killed.run.connections if c.closed_by == "server"]
    assert dropped and all(c.server == killed.run.servers[0] for c in dropped), [c.server for c in dropped]


def test_clients_of_the_killed_process_are_back_through_the_other_within_3s(killed):
    assert_recovered(killed, RECONNECT_BOUND)


def test_the_restarted_process_serves_new_sockets(killed):
    assert_none(killed.problems("probes"), "new sockets on both processes")


@pytest.fixture(scope="module")
def worker_killed(fault_db):
    restarted = {}

    async def kill(stack) -> None:
        restarted["killed"] = stack.kill_worker()
        killed_at = time.monotonic()
        while len(stack.workers()) < 2 and time.monotonic() < killed_at + 10:
            await asyncio.sleep(0.01)
        restarted["restart_s"] = round(time.monotonic() - killed_at, 2)

    def check_restarted(stack) -> None:
        workers = stack.workers()
        restarted["workers"] = len(workers)
        restarted["new"] = restarted["killed"] not in workers

    result = outage_scenario(
        "worker_kill",
        "SIGKILL of one of 2 scripts/serve.py workers (serve.py restarts it)",
        kill,
        check_restarted,
        outage=2,
        after=5,
        recovery_since="fault",
        serve_workers=2,
    )
    result.restarted = restarted
    result.run.notes.append(f"serve.py had 2 workers again {restarted['restart_s']} s after the kill")
    result.save()
    return result


def test_worker_kill_loses_nothing_and_every_send_is_answered_within_10s(worker_killed):
    assert_none(worker_killed.problems(*INTEGRITY, "unanswered"), "integrity and answers")


def test_worker_kill_drops_only_the_killed_workers_sockets_without_a_close_code(worker_killed):
    assert_none(worker_killed.problems("close_codes", "api_errors_are_json"), "closes and API errors")
    assert any(c.closed_by == "server" for c in worker_killed.run.connections), "the killed worker had no socket"


def test_serve_py_replaces_the_killed_worker_and_clients_are_back_within_3s(worker_killed):
    assert (worker_killed.restarted["workers"], worker_killed.restarted["new"]) == (2, True)
    assert worker_killed.restarted["restart_s"] <= 1.0  # "restarted at once" (scripts/serve.py)
    assert_recovered(worker_killed, RECONNECT_BOUND)
    assert_none(worker_killed.problems("probes"), "new sockets")
