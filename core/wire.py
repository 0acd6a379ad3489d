"""One event, many sockets: its WebSocket frame is built once.

A server's frames are not masked, so a text frame is the same bytes for every socket it goes to.
When the ASGI server is uvicorn's websockets-sansio protocol (what scripts/serve.py runs), the
hub's fan-out writes those bytes straight to each socket's transport, instead of going through
ASGI send, which would encode, frame and copy the text again for every socket (docs/performance.md).
Any other server (daphne, Channels' test communicator), and a socket that is not open, is closing,
or is paused by flow control, goes through ASGI send as before: `write` says whether it wrote.
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
    """Write `frame` to the socket now if it is open and not paused; False if the caller must use
    ASGI send instead (which waits for flow control and knows how to fail)."""
    if (
        server.close_sent
        or server.disconnected
        or not server.writable.is_set()
        or server.conn.state is not State.OPEN
        or server.transport.is_closing()
    ):
        return False
    server.transport.write(frame)
    return True
