"""One event, many sockets: its WebSocket frame is built once.

A server's frames are not masked, so a text frame is the same bytes for every socket it goes to.
When the ASGI server is uvicorn's websockets-sansio protocol (what scripts/serve.py runs), the
hub's fan-out writes those bytes straight to each socket's transport, instead of going through
ASGI send, which would encode, frame and copy the text again for every socket (docs/performance.md).
Any other server (daphne, Channels' test communicator) goes through ASGI send. On uvicorn every
frame after the handshake takes the direct path, so frames of one socket never overtake each other.

Memory (issue 15: idle sockets by the hundred thousand): once a socket is accepted, settle() lets
go of what uvicorn keeps for the connection's life but an open socket never reads again (the
parsed handshake's headers, twice over) and gives it a receive queue without asyncio.Queue's four
deques: 5-8 KB of a socket's ~28 (docs/performance.md, "memory per socket").

Internals relied on, as uvicorn 0.54.0 and websockets 15.0.1 have them (requirements.txt pins
both; tests/test_wire.py checks each name on a real protocol object, runs write() and close() in
every socket state, and fails on other versions, so re-read this list when bumping either):

- uvicorn's `WebSocketsSansIOProtocol` (uvicorn.protocols.websockets.websockets_sansio_impl):
  - the ASGI `send` callable is its bound method, so `send.__self__` is the protocol;
  - `conn`: its websockets `ServerProtocol`;
  - `transport`: the asyncio transport (public API used: `write`, `is_closing`,
    `get_write_buffer_size`, `abort`);
  - `close_sent`: read (nothing more may be written once a close frame went out) and set to True
    by close(), as uvicorn's own websocket.close does; uvicorn then answers the client's close
    reply by cancelling `close_timer` and closing the transport (handle_close);
  - `disconnected`: set by connection_lost;
  - `queue`: the ASGI receive queue; close() puts websocket.disconnect on it, as uvicorn does.
    uvicorn itself calls `put_nowait`, `get` (in receive(), the app's one reader) and `empty` on
    it, nothing else; settle() replaces it with an Inbox, which has exactly those (and qsize,
    get_nowait), when nothing waits on it yet and with what it holds;
  - `close_timer`: set by close() to the handle of the abort after `close_timeout`; uvicorn
    cancels it in handle_close and connection_lost;
  - `close_timeout` (10 s) and `loop` (the connection's event loop);
  - `request` and `response`: websockets' parsed handshake (`websockets.http11.Request` and
    `Response`, every header as str), which uvicorn keeps for the connection's life but reads only
    until the accept is sent; `scope`: the connection's ASGI scope, whose `headers` list (every
    header again, as bytes) uvicorn reads no more after the handshake either. settle() empties
    the request's headers (`Headers.clear()`, public API: websockets' own parser keeps the request
    object itself, as a local of its parse() generator), drops the response and empties the
    scope's headers list in place (the app's copies of the scope share that list).
- websockets' sans-io `ServerProtocol` (`conn` above; websockets.protocol.Protocol):
  - `extensions`: the negotiated extensions (non-empty: per-message compression, so frames are
    not plain and the direct path is off);
  - `state`: `websockets.protocol.State`; only OPEN takes frames;
  - `send_close(code, reason)` and `data_to_send()`: the close frame, built and handed over by
    the protocol itself so its state moves to CLOSING as with any close.
- That frames this module writes bypass `conn` is safe because a server's text frame carries no
  per-connection state unless an extension is negotiated, which server_of() rules out.

Falling back to ASGI send is logged once per process (a warning): it is correct, but on a
production uvicorn it means the fast path is off (compression turned on, or another server).
"""

import asyncio
import logging
import struct
from typing import Any

from websockets.protocol import State

WebSocketsSansIOProtocol: type | None
try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn is in requirements.txt
    WebSocketsSansIOProtocol = None

logger = logging.getLogger(__name__)
_fallback_logged = False  # the slow-path warning is given once per process


def text_frame(text: str) -> bytes:
    """A final, unmasked, uncompressed text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def event_frame(event: dict) -> bytes:
    """The frame of a hub event's text, built by the first socket the event reaches and kept in
    the event for the others (the hub hands every member the same dict)."""
    frame = event.get("frame")
    if frame is None:
        frame = event["frame"] = text_frame(event["text"])
    return frame


def server_of(send: Any) -> Any | None:
    """The uvicorn protocol behind an ASGI send callable, if that is what it is and its frames
    are plain (no per-message compression negotiated). Call it once the socket is accepted.
    None means ASGI send for this socket (warned about once per process)."""
    server: Any = getattr(send, "__self__", None)
    uvicorn = WebSocketsSansIOProtocol is not None and isinstance(server, WebSocketsSansIOProtocol)
    if uvicorn and not server.conn.extensions:
        return server
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        if uvicorn:
            why = "per-message compression was negotiated"
        else:
            name = getattr(send, "__qualname__", None) or type(send).__qualname__
            module = getattr(send, "__module__", None) or type(send).__module__
            why = f"the ASGI server is not uvicorn's websockets-sansio protocol (send is {module}.{name})"
        logger.warning("WebSocket frames go through ASGI send, the slow path: %s (logged once per process)", why)
    return None


def write(server: Any, frame: bytes) -> bool:
    """Write `frame` to the socket now, whatever its flow control says: a socket that cannot keep
    up must never hold back the hub's other sockets (the caller watches `backlog`). False if the
    socket is closing or gone; the frame is then dropped (the client syncs when it reconnects)."""
    if server.close_sent or server.disconnected or server.conn.state is not State.OPEN or server.transport.is_closing():
        return False
    server.transport.write(frame)
    return True


def backlog(server: Any) -> int:
    """Bytes written to the socket that the kernel has not taken yet (the client is not reading)."""
    return server.transport.get_write_buffer_size()


def close(server: Any, code: int, reason: str = "") -> None:
    """Start the closing handshake now, without waiting for flow control as ASGI send would (a
    socket that is too slow may never drain): the close frame is queued behind what the client
    has not read, and the connection is dropped if no reply comes within the server's
    close_timeout. The app receives websocket.disconnect with `code` at once."""
    if server.close_sent or server.disconnected or server.conn.state is not State.OPEN or server.transport.is_closing():
        return
    server.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
    server.conn.send_close(code, reason)
    server.transport.write(b"".join(server.conn.data_to_send()))
    server.close_sent = True
    server.close_timer = server.loop.call_later(server.close_timeout, server.transport.abort)


class Inbox:
    """An accepted socket's receive queue, as uvicorn uses it (put_nowait, empty, and get by one
    reader: the app's receive loop), without the four deques of an asyncio.Queue (~3 KB)."""

    __slots__ = ("items", "waiter")

    def __init__(self, items: list) -> None:
        self.items = items  # few: uvicorn stops reading the socket while one is waiting here
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        return len(self.items)

    def get_nowait(self) -> Any:
        if not self.items:
            raise asyncio.QueueEmpty
        return self.items.pop(0)

    async def get(self) -> Any:
        while not self.items:
            if self.waiter is not None:
                raise RuntimeError("a socket's receive queue has one reader")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


def settle(server: Any) -> None:
    """Call once the socket is accepted, from the app's receive loop (so nothing waits on the
    receive queue). Frees what uvicorn keeps for the socket's life that an open socket does not
    need: websockets' request headers and response, the scope's headers (3-7 KB, as many as the
    client sent; whoever reads them, accounts.middleware, does so before the accept), and the
    asyncio.Queue (an Inbox instead, holding whatever was already queued)."""
    server.request.headers.clear()
    server.response = None
    server.scope["headers"].clear()
    queue, items = server.queue, []
    while not queue.empty():
        items.append(queue.get_nowait())
    server.queue = Inbox(items)
