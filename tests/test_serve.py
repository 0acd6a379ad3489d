"""scripts/serve.py: the listening socket its workers share."""

import asyncio
import socket

import uvloop
from serve import listen  # scripts/ is on sys.path (tests/conftest.py)


def test_connections_accepted_from_the_shared_socket_have_nagle_off():
    """Accepted the way uvicorn accepts from --fd (the fd wrapped as AF_UNIX, so no TCP options
    are set), a connection still has TCP_NODELAY: it inherits it from the listener."""

    async def accepted_nodelay() -> int:
        listener = listen("127.0.0.1", 0)
        as_uvicorn_sees_it = socket.fromfd(listener.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        got = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                got.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Protocol, sock=as_uvicorn_sees_it)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
            result = await asyncio.wait_for(got, 5)
            writer.close()
            return result
        finally:
            server.close()
            listener.close()

    assert uvloop.run(accepted_nodelay()) == 1
