"""The fault proxy itself, against a small echo server: pass through, cut, freeze, slow, restore."""

import asyncio
import socket
import time

import pytest
import pytest_asyncio

from tests.faults.proxy import Proxy, ProxyThread

pytestmark = [pytest.mark.faults_quick]

BOUND = 5  # seconds: a bound on waiting for what must happen, never a measurement


class Echo:
    """An upstream that echoes every byte and counts what it received."""

    def __init__(self) -> None:
        self.received = 0

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {BOUND}s"
        await asyncio.sleep(0.005)


async def round_trip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = await asyncio.wait_for(reader.readexactly(len(payload)), BOUND)
    writer.close()
    return data


@pytest_asyncio.fixture
async def echo_proxy():
    echo = Echo()
    proxy = Proxy(await echo.start())
    await proxy.start()
    yield echo, proxy
    await proxy.close()
    echo.server.close()


@pytest.mark.asyncio
async def test_passes_bytes_both_ways_on_many_connections(echo_proxy):
    echo, proxy = echo_proxy
    payloads = [bytes([i]) * (1000 + i * 5000) for i in range(20)]
    assert await asyncio.gather(*(round_trip(proxy.port, p) for p in payloads)) == payloads
    assert echo.received == sum(map(len, payloads)) and proxy.accepted == 20


@pytest.mark.asyncio
async def test_cut_closes_connections_and_refuses_new_ones_until_restored(echo_proxy):
    _, proxy = echo_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"

    await proxy.cut()
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await asyncio.wait_for(reader.readexactly(1), BOUND)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    assert proxy.open_connections == 0

    await proxy.restore()  # the same port again
    assert await round_trip(proxy.port) == b"ping"


@pytest.mark.asyncio
async def test_freeze_accepts_but_moves_no_byte_until_restored(echo_proxy):
    echo, proxy = echo_proxy
    await proxy.freeze()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)  # accepted
    writer.write(b"held")
    await until(lambda: proxy.held >= 1, "the proxy holding the bytes")
    assert echo.received == 0

    await proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(4), BOUND) == b"held"
    writer.close()


@pytest.mark.asyncio
async def test_freeze_stalls_open_connections_too(echo_proxy):
    echo, proxy = echo_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"1")
    assert await reader.readexactly(1) == b"1"
    await proxy.freeze()
    writer.write(b"2")
    await until(lambda: proxy.held >= 1, "the proxy holding the bytes")
    assert echo.received == 1
    await proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(1), BOUND) == b"2"
    writer.close()


@pytest.mark.asyncio
async def test_slow_adds_latency_to_each_chunk_without_queueing_them(echo_proxy):
    _, proxy = echo_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    await proxy.slow(0.2)
    started = time.monotonic()
    for i in range(5):  # five chunks at once: each is late by the delay (twice: there and back)
        writer.write(bytes([i]))
        await writer.drain()
        await asyncio.sleep(0.01)
    assert await asyncio.wait_for(reader.readexactly(5), BOUND) == bytes(range(5))
    elapsed = time.monotonic() - started
    assert elapsed >= 0.4  # there and back
    assert elapsed < 5 * 0.4  # not one delay after another
    await proxy.restore()
    writer.close()


@pytest.mark.asyncio
async def test_an_unreachable_upstream_closes_the_connection():
    proxy = Proxy(("127.0.0.1", 1))  # nothing listens on port 1
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await asyncio.wait_for(reader.read(1), BOUND) == b""
    writer.close()
    await proxy.close()


def test_the_threaded_proxy_forwards_while_the_caller_blocks():
    """Its own loop in a thread: plain blocking sockets go through, and modes switch from here."""
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        proxies = ProxyThread()
        try:
            proxy = proxies.start(upstream.getsockname())
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as client:
                server_side, _ = upstream.accept()
                with server_side:
                    client.sendall(b"hello")
                    assert server_side.recv(5) == b"hello"
                    proxy.cut()
                    assert client.recv(1) == b""  # closed by the cut
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND)
            proxy.restore()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as client:
                server_side, _ = upstream.accept()
                with server_side:
                    server_side.sendall(b"back")
                    assert client.recv(4) == b"back"
        finally:
            proxies.stop()


@pytest.mark.asyncio
async def test_retarget_sends_new_connections_elsewhere(echo_proxy):
    _, proxy = echo_proxy
    other = await asyncio.start_server(lambda r, w: w.write(b"other") or w.close(), "127.0.0.1", 0)
    await proxy.retarget(other.sockets[0].getsockname())
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await asyncio.wait_for(reader.read(), BOUND) == b"other"
    writer.close()
    other.close()
