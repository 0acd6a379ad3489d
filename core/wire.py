"""One event, many sockets: its WebSocket frame is built once.

A server's frames are not masked, so a text frame is the same bytes for every socket it goes to.
When the ASGI server is uvicorn's websockets-sansio protocol (what scripts/serve.py runs), the
hub's fan-out writes those bytes straight to each socket's transport, instead of going through
ASGI send, which would encode, frame and copy the text again for every socket (docs/performance.md).
Any other server (daphne, Channels' test communicator) goes through ASGI send. On uvicorn every
frame after the handshake takes the direct path, so frames of one socket never overtake each other.
"""

import struct
from typing import Any

from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn is in requirements.txt
    WebSocketsSansIOProtocol = None


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


def server_of(send: Any) -> Any | None:
    """The uvicorn protocol behind an ASGI send callable, if that is what it is and its frames
    are plain (no per-message compression negotiated). Call it once the socket is accepted."""
    server = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(server, WebSocketsSansIOProtocol):
        return None
    return None if server.conn.extensions else server


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
