"""core.wire: the frame bytes it builds, writing them straight to a real uvicorn socket, write()
and close() in every state a socket can be in, the once-per-process fallback warning, and the
uvicorn / websockets internals it relies on."""

import ast
import asyncio
import contextlib
import importlib.metadata
import inspect
import logging
import re
import socket
from pathlib import Path

import pytest
import uvicorn
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.uri import parse_uri

from core import wire


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_would_send(size):
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)  # multi-byte characters too
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert wire.text_frame(text) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("deflate", [False, True])
async def test_frames_go_straight_to_a_uvicorn_socket_unless_compression_was_negotiated(deflate):
    """With per-message deflate on (not how we run uvicorn), frames must be compressed, so there
    is no direct path and ASGI send is used; either way the client reads the same messages."""
    found = {"direct": 0}

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        server = wire.server_of(send)
        found["server"] = server
        for text in ("first", "x" * 70000, "last"):
            if server is not None and wire.write(server, wire.text_frame(text)):
                found["direct"] += 1
            else:
                await send({"type": "websocket.send", "text": text})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with uvicorn_serving(app, deflate=deflate) as port:
        compression = "deflate" if deflate else None
        async with connect(f"ws://127.0.0.1:{port}/", compression=compression, max_size=None) as client:
            received = [await asyncio.wait_for(client.recv(), 5) for _ in range(3)]
    assert received == ["first", "x" * 70000, "last"]
    assert found["direct"] == (0 if deflate else 3)


@contextlib.asynccontextmanager
async def uvicorn_serving(app, *, deflate: bool = False):
    """A real uvicorn server (websockets-sansio) running `app` on a free 127.0.0.1 port; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, ws="websockets-sansio", ws_per_message_deflate=deflate, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:  # uvicorn announces nothing else
            await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


def test_only_uvicorns_protocol_gets_direct_writes():
    async def plain_send(message):  # e.g. Channels' test communicator, or daphne
        pass

    assert wire.server_of(plain_send) is None


# -- one real uvicorn protocol object, on a transport that records what is written --------------


class RecordingTransport(asyncio.Transport):
    """Keeps what is written (nothing drains, so it is also the backlog); closing and aborting
    only set flags, so a test can put a socket in any one state at a time."""

    def __init__(self):
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.aborted = False

    def write(self, data):
        self.written += data

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    def abort(self):
        self.closing = self.aborted = True

    def get_write_buffer_size(self):
        return len(self.written)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


class Socket:
    """A WebSocketsSansIOProtocol built as uvicorn builds it, fed a real client handshake, with a
    websockets client protocol reading what the server writes."""

    def __init__(self, protocol, transport, client, app_send):
        self.protocol, self.transport, self.client, self.app_send = protocol, transport, client, app_send
        self.read_up_to = 0

    def received(self):
        """The frames the client got since the last call."""
        self.client.receive_data(bytes(self.transport.written[self.read_up_to :]))
        self.read_up_to = len(self.transport.written)
        return [event for event in self.client.events_received() if isinstance(event, Frame)]

    def snapshot(self):
        """What a no-op must leave unchanged."""
        protocol = self.protocol
        return (
            bytes(self.transport.written),
            protocol.queue.qsize(),
            protocol.close_sent,
            protocol.close_timer,
            protocol.conn.state,
            self.transport.closing,
        )


@contextlib.asynccontextmanager
async def uvicorn_socket(*, accept=True, deflate=False):
    accepted = asyncio.Event()
    finish = asyncio.get_running_loop().create_future()
    sends = []

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        if accept:
            await send({"type": "websocket.accept"})
        sends.append(send)
        accepted.set()
        await finish

    # The options scripts/serve.py gives uvicorn (per-message deflate only when a test asks).
    config = uvicorn.Config(
        app, ws="websockets-sansio", ws_per_message_deflate=deflate, ws_ping_interval=0, lifespan="off"
    )
    config.load()
    state = ServerState()
    protocol = WebSocketsSansIOProtocol(config, state, app_state={}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    client = ClientProtocol(
        parse_uri("ws://127.0.0.1:8000/"), extensions=[ClientPerMessageDeflateFactory()] if deflate else None
    )
    client.send_request(client.connect())
    protocol.data_received(b"".join(client.data_to_send()))
    await asyncio.wait_for(accepted.wait(), 5)
    sock = Socket(protocol, transport, client, sends[0])
    if accept:
        sock.received()  # the handshake response
        assert client.state is State.OPEN
    try:
        yield sock
    finally:
        finish.set_result(None)
        await asyncio.gather(*state.tasks)
        if not protocol.disconnected:
            protocol.connection_lost(None)


@pytest.mark.asyncio
async def test_write_and_close_on_an_open_socket():
    async with uvicorn_socket() as sock:
        protocol, transport = sock.protocol, sock.transport
        assert wire.server_of(sock.app_send) is protocol
        assert wire.write(protocol, wire.text_frame("hello")) is True
        [frame] = sock.received()
        assert (frame.opcode, frame.data) == (Opcode.TEXT, b"hello")
        assert wire.backlog(protocol) == len(transport.written)

        wire.close(protocol, 4429, "too slow")
        # The app hears of it at once; the client gets a close frame after what it has not read.
        assert protocol.queue.get_nowait() == {"type": "websocket.disconnect", "code": 4429, "reason": "too slow"}
        [frame] = sock.received()
        assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data) == Close(4429, "too slow")
        assert protocol.close_sent and protocol.conn.state is State.CLOSING
        assert not transport.closing  # the client may still send its close reply
        assert protocol.close_timer is not None and protocol.close_timer.when() > asyncio.get_running_loop().time()

        # Nothing more goes out after the close frame.
        assert wire.write(protocol, wire.text_frame("late")) is False
        assert sock.received() == []

        # The client's reply completes the handshake: uvicorn cancels our timer and closes.
        timer = protocol.close_timer
        sock.client.receive_data(b"")  # nothing pending
        protocol.data_received(b"".join(sock.client.data_to_send()))  # the client echoed the close
        assert timer.cancelled() and protocol.close_timer is None
        assert transport.closing and not transport.aborted


@pytest.mark.asyncio
async def test_close_drops_a_client_that_never_replies_after_close_timeout():
    async with uvicorn_socket() as sock:
        sock.protocol.close_timeout = 0.01
        wire.close(sock.protocol, 4429, "too slow")
        await asyncio.sleep(0.05)
        assert sock.transport.aborted


@pytest.mark.asyncio
async def test_losing_the_connection_cancels_the_close_timer():
    async with uvicorn_socket() as sock:
        wire.close(sock.protocol, 4408, "silent")
        timer = sock.protocol.close_timer
        sock.protocol.connection_lost(None)
        assert timer.cancelled() and sock.protocol.close_timer is None


def _close_sent_by_the_app(sock):
    """uvicorn's own websocket.close (ASGI send), e.g. Channels' close on another server path."""
    return sock.app_send({"type": "websocket.close", "code": 1000})


def _close_sent_by_wire(sock):
    wire.close(sock.protocol, 4429, "too slow")


def _disconnected(sock):
    sock.protocol.connection_lost(None)  # closes the transport too


def _disconnected_by_an_error(sock):
    sock.protocol.connection_lost(ConnectionResetError())  # uvicorn leaves the transport alone


def _server_shutting_down(sock):
    """What uvicorn's shutdown() does before it closes the transport: close_sent stays False."""
    sock.protocol.conn.send_close(1012)
    sock.transport.write(b"".join(sock.protocol.conn.data_to_send()))


def _client_closed(sock):
    sock.client.send_close(1000)
    sock.protocol.data_received(b"".join(sock.client.data_to_send()))


def _end_of_stream(sock):
    sock.protocol.conn.receive_eof()


def _transport_closing(sock):
    sock.transport.close()


# Each guard alone, on an otherwise open socket: every one of them is needed.
def _only_close_sent(sock):
    sock.protocol.close_sent = True


def _only_disconnected(sock):
    sock.protocol.disconnected = True


def _only_conn_closing(sock):
    sock.protocol.conn.state = State.CLOSING


def _only_conn_closed(sock):
    sock.protocol.conn.state = State.CLOSED


STATES = {
    "close sent by the app (ASGI websocket.close)": (_close_sent_by_the_app, {}),
    "close already sent by wire.close": (_close_sent_by_wire, {}),
    "disconnected": (_disconnected, {}),
    "disconnected by an error, transport not closed yet": (_disconnected_by_an_error, {}),
    "server shutting down (conn CLOSING)": (_server_shutting_down, {}),
    "client sent a close frame (conn CLOSING, transport closing)": (_client_closed, {}),
    "end of stream (conn CLOSED)": (_end_of_stream, {}),
    "transport closing": (_transport_closing, {}),
    "only close_sent": (_only_close_sent, {}),
    "only disconnected": (_only_disconnected, {}),
    "only conn CLOSING": (_only_conn_closing, {}),
    "only conn CLOSED": (_only_conn_closed, {}),
    "handshake not accepted yet (conn CONNECTING)": (None, {"accept": False}),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("state", STATES)
async def test_write_and_close_do_nothing_once_a_socket_is_not_open(state):
    """Whatever the state, nothing is written, queued or scheduled, and nothing raises
    (websockets raises InvalidState for a close frame on a socket that is not OPEN)."""
    enter, options = STATES[state]
    async with uvicorn_socket(**options) as sock:
        if enter is not None:
            entered = enter(sock)
            if inspect.isawaitable(entered):
                await entered
        if options.get("accept", True):
            sock.received()  # whatever entering the state wrote
        before = sock.snapshot()
        assert wire.write(sock.protocol, wire.text_frame("dropped")) is False
        wire.close(sock.protocol, 4429, "too slow")
        assert sock.snapshot() == before


# -- the slow path is logged once ----------------------------------------------------------------


@pytest.fixture
def fallback_not_logged_yet(monkeypatch, caplog):
    monkeypatch.setattr(wire, "_fallback_logged", False)
    caplog.set_level(logging.WARNING, logger="core.wire")
    return caplog


def _fallback_warnings(caplog):
    return [record for record in caplog.records if record.name == "core.wire" and record.levelno == logging.WARNING]


def test_falling_back_to_asgi_send_is_logged_once_per_process(fallback_not_logged_yet):
    caplog = fallback_not_logged_yet

    async def plain_send(message):
        pass

    for _ in range(3):
        assert wire.server_of(plain_send) is None
    [record] = _fallback_warnings(caplog)
    message = record.getMessage()
    assert "slow path" in message and "not uvicorn" in message and "plain_send" in message


@pytest.mark.asyncio
async def test_compression_falls_back_and_says_why_once(fallback_not_logged_yet):
    caplog = fallback_not_logged_yet
    async with uvicorn_socket(deflate=True) as first, uvicorn_socket(deflate=True) as second:
        assert first.protocol.conn.extensions  # deflate was negotiated
        assert wire.server_of(first.app_send) is None
        assert wire.server_of(second.app_send) is None
    [record] = _fallback_warnings(caplog)
    assert "per-message compression" in record.getMessage()


@pytest.mark.asyncio
async def test_the_direct_path_logs_nothing(fallback_not_logged_yet):
    async with uvicorn_socket() as sock:
        assert wire.server_of(sock.app_send) is sock.protocol
    assert _fallback_warnings(fallback_not_logged_yet) == []
    assert wire._fallback_logged is False


# -- the internals relied on ----------------------------------------------------------------------


def _attributes_used():
    """Every `server.X`, `server.conn.X` and `server.transport.X` that core/wire.py reads, calls
    or assigns."""
    tree = ast.parse(Path(wire.__file__).read_text())
    used = {"server": set(), "conn": set(), "transport": set()}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id == "server":
            used["server"].add(node.attr)
        elif isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "server":
            if owner.attr in ("conn", "transport"):
                used[owner.attr].add(node.attr)
    return used


def test_the_pinned_versions_are_the_ones_the_docstring_names():
    """Bumping uvicorn or websockets fails here until core/wire.py's list has been re-read."""
    pins = Path(__file__).resolve().parent.parent.joinpath("requirements.txt").read_text().splitlines()
    for package in ("uvicorn", "websockets"):
        version = importlib.metadata.version(package)
        assert f"{package}=={version}" in pins
        assert f"{package} {version}" in " ".join(wire.__doc__.split())


def test_every_internal_relied_on_is_listed_and_exists_on_a_real_protocol():
    used = _attributes_used()
    assert used["server"] >= {"conn", "transport", "close_sent", "disconnected", "queue", "close_timer", "loop"}
    assert used["conn"] >= {"state", "extensions", "send_close", "data_to_send"}
    for name in used["server"] | used["conn"]:
        assert f"`{name}" in wire.__doc__, f"core/wire.py uses {name!r} without listing it in its docstring"

    async def check():
        async with uvicorn_socket() as sock:
            protocol = sock.protocol
            # The ASGI send callable uvicorn hands the app is the protocol's bound method.
            assert sock.app_send.__self__ is protocol
            for name in used["server"]:
                assert hasattr(protocol, name), f"uvicorn's protocol has no {name!r}"
            for name in ("close_sent", "disconnected"):
                assert getattr(protocol, name) is False
            assert isinstance(protocol.queue, asyncio.Queue)
            assert protocol.close_timer is None and isinstance(protocol.close_timeout, float)
            assert protocol.loop is asyncio.get_running_loop()
            assert isinstance(protocol.conn, Protocol)
            for name in used["conn"]:
                assert hasattr(protocol.conn, name), f"websockets' protocol has no {name!r}"
            assert protocol.conn.state is State.OPEN and protocol.conn.extensions == []
            assert callable(protocol.conn.send_close) and callable(protocol.conn.data_to_send)
            for name in used["transport"]:
                assert hasattr(asyncio.Transport, name), f"{name!r} is not asyncio's transport API"
            # uvicorn's own close path (what wire.close mirrors) uses the same names.
            source = inspect.getsource(WebSocketsSansIOProtocol)
            for name in ("self.close_sent = True", "self.close_timer = self.loop.call_later(self.close_timeout"):
                assert name in source

    asyncio.run(check())


# -- settle(): what an accepted socket no longer keeps ------------------------------------------


@pytest.mark.asyncio
async def test_settle_frees_the_handshake_and_keeps_what_was_queued():
    async with uvicorn_socket() as sock:
        protocol = sock.protocol
        assert protocol.request.headers and protocol.response is not None and protocol.scope["headers"]
        sock.client.send_text(b"early")  # queued before settle(): kept, in order
        protocol.data_received(b"".join(sock.client.data_to_send()))
        headers_list = protocol.scope["headers"]
        wire.settle(protocol)
        assert len(protocol.request.headers) == 0 and list(protocol.request.headers.raw_items()) == []
        assert protocol.response is None
        assert protocol.scope["headers"] is headers_list and headers_list == []  # emptied in place
        assert isinstance(protocol.queue, wire.Inbox)
        assert await protocol.receive() == {"type": "websocket.receive", "text": "early"}

        # What uvicorn does with the queue from then on: frames, then a disconnect, in order.
        sock.client.send_text(b"later")
        protocol.data_received(b"".join(sock.client.data_to_send()))
        assert await protocol.receive() == {"type": "websocket.receive", "text": "later"}
        waiting = asyncio.ensure_future(protocol.receive())
        await asyncio.sleep(0)
        assert not waiting.done()
        wire.close(protocol, 4408, "silent")
        assert await asyncio.wait_for(waiting, 5) == {"type": "websocket.disconnect", "code": 4408, "reason": "silent"}


@pytest.mark.asyncio
async def test_a_settled_socket_still_serves_asgi_send_and_the_clients_close():
    async with uvicorn_socket() as sock:
        protocol = sock.protocol
        wire.settle(protocol)
        await sock.app_send({"type": "websocket.send", "text": "through ASGI send"})
        assert wire.write(protocol, wire.text_frame("direct")) is True
        assert [(frame.opcode, frame.data) for frame in sock.received()] == [
            (Opcode.TEXT, b"through ASGI send"),
            (Opcode.TEXT, b"direct"),
        ]
        sock.client.send_close(1000)
        protocol.data_received(b"".join(sock.client.data_to_send()))
        assert await protocol.receive() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
        assert sock.transport.closing


@pytest.mark.asyncio
async def test_settled_sockets_on_a_real_uvicorn_server_echo_and_end():
    """The whole path: uvicorn serving, settle() after the accept, frames both ways, the
    client's close reaching the app's receive loop."""
    ended = asyncio.Event()

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        server = wire.server_of(send)
        wire.settle(server)
        while (message := await receive())["type"] == "websocket.receive":
            wire.write(server, wire.text_frame(message["text"].upper()))
        assert message["type"] == "websocket.disconnect"
        ended.set()

    async with uvicorn_serving(app) as port:
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as client:
            for text in ("one", "two", "x" * 70000):
                await client.send(text)
                assert await asyncio.wait_for(client.recv(), 5) == text.upper()
        await asyncio.wait_for(ended.wait(), 5)


@pytest.mark.asyncio
async def test_an_inbox_has_one_reader_and_forgets_a_cancelled_wait():
    inbox = wire.Inbox([])
    first = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await inbox.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert inbox.waiter is None
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()
    inbox.put_nowait(1)
    inbox.put_nowait(2)  # before the reader runs: both kept, in order
    assert (inbox.qsize(), await inbox.get(), inbox.get_nowait(), inbox.empty()) == (2, 1, 2, True)


def _uses(cls, name):
    """The methods of `cls` that read or write `self.<name>`."""
    tree = ast.parse(inspect.getsource(cls))
    return {
        method.name
        for method in ast.walk(tree)
        if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(method)
        if isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def test_what_settle_takes_away_is_not_read_after_the_handshake():
    """settle()'s premises, on uvicorn's source: the request is read only by handle_connect, the
    response also by send()'s accept branch, scope headers only where the scope is built; the
    receive queue is only put to, got from (receive) and checked for emptiness."""
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert _uses(WebSocketsSansIOProtocol, "request") == {"handle_connect"}
    assert _uses(WebSocketsSansIOProtocol, "response") == {"handle_connect", "send"}
    assert source.count("self.response") == 6  # created, checked and sent in handle_connect; 3 in send's accept
    assert '["headers"]' not in source and "scope.get(" not in source
    for helper in (get_client_addr, get_path_with_query_string):  # what uvicorn logs later reads
        assert "headers" not in inspect.getsource(helper)
    queue_calls = set(re.findall(r"self\.queue\.(\w+)", source))
    assert queue_calls == {"put_nowait", "get", "empty"}
    for name in queue_calls | set(re.findall(r"\bqueue\.(\w+)", Path(wire.__file__).read_text())):
        assert callable(getattr(wire.Inbox, name, None)), f"the Inbox has no {name!r}"
    assert hasattr(Headers, "clear") and "def clear" in inspect.getsource(Headers)
