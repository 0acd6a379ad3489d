"""core.wire builds the same frame bytes the websockets library would, at every length boundary."""

import pytest
from websockets.frames import Frame, Opcode

from core import wire


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_would_send(size):
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)  # multi-byte characters too
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert wire.text_frame(text) == expected


def test_only_uvicorns_protocol_gets_direct_writes():
    async def plain_send(message):  # e.g. Channels' test communicator, or daphne
        pass

    assert wire.server_of(plain_send) is None
