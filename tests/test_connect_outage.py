"""A socket that connects while Redis or PostgreSQL is away is closed with 1013 (try again later):
never a handshake that hangs, fails without a code, or reads as "not authenticated" (4401)."""

import asyncio

import psycopg
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.services import ws_ticket_issue
from config.asgi import application
from messaging import consumers
from tests.sockets import TIMEOUT, connect_app, receive_close


@pytest_asyncio.fixture
async def frozen_redis():
    """A Redis that accepts connections and never answers (as a frozen one does)."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_ticket_that_cannot_be_checked_while_redis_hangs_closes_with_1013(make_user, settings, frozen_redis):
    ada = await database_sync_to_async(make_user)("ada")
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user=ada)
    # This test's loop has no async Redis client yet: the one it makes talks to the frozen Redis.
    settings.REDIS_URL = frozen_redis
    settings.REDIS_TIMEOUT = 0.5
    communicator = WebsocketCommunicator(application, f"/ws/?ticket={ticket}", headers=[(b"host", b"localhost")])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    code, frames = await receive_close(communicator)
    assert (code, frames) == (consumers.CLOSE_TRY_AGAIN, [])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_socket_whose_rooms_cannot_be_read_closes_with_1013(make_user, monkeypatch):
    ada = await database_sync_to_async(make_user)("ada")

    async def database_away(*, user_id):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(consumers.selectors, "asession_state", database_away)
    communicator = WebsocketCommunicator(consumers.ChatConsumer.as_asgi(), "/ws/")
    communicator.scope["user"] = ada
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    code, frames = await receive_close(communicator)
    assert (code, frames) == (consumers.CLOSE_TRY_AGAIN, [])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_without_an_outage_a_bad_ticket_is_still_4401():
    communicator = await connect_app("/ws/?ticket=not-a-ticket")
    code, _ = await receive_close(communicator)
    assert code == consumers.CLOSE_UNAUTHENTICATED
