"""A TCP proxy that puts faults between Parley's servers and a dependency (PostgreSQL, Redis, S3).

    proxy = Proxy(("127.0.0.1", 5432)); port = await proxy.start()   # pure asyncio, on any loop
    proxies = ProxyThread(); redis = proxies.start(("127.0.0.1", 6379))  # on a loop of its own

Modes (each takes effect at once, for open connections too):

- pass through (the default): bytes are copied both ways as they come;
- `cut()`: every connection is closed and the port stops listening, so new ones are refused, as
  when the dependency's host is down;
- `freeze()`: connections are accepted and kept open but no byte moves either way (what is read is
  held, and reading stops), as when the dependency hangs or the network drops packets;
- `slow(seconds)`: every chunk is delivered `seconds` after it arrived (latency, not a bandwidth
  cap: chunks do not wait for each other);
- `restore()`: back to pass through; the port listens again after a cut, held bytes flow on;
- `retarget(upstream)`: forward new connections elsewhere (e.g. to a server that only errs).

`ProxyThread` runs proxies on an event loop in a thread of its own and makes these methods
callable from any thread: the proxy keeps forwarding while the test's own code blocks.
"""

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any


class Proxy:
    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port  # 0: a free port, chosen by start()
        self.delay = 0.0
        self.accepted = 0  # connections accepted so far
        self.held = 0  # chunks read and waiting for a freeze to end
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        await self.cut()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def freeze(self) -> None:
        self._flowing.clear()

    async def slow(self, seconds: float) -> None:
        self.delay = seconds

    async def retarget(self, upstream: tuple[str, int]) -> None:
        """Forward to another upstream from now on (open connections are closed)."""
        self.upstream = upstream
        for task in list(self._connections):
            task.cancel()

    async def restore(self) -> None:
        self.delay = 0.0
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.accepted += 1
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            pipes = [self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)]
            await asyncio.gather(*pipes)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:  # one side ended, failed or was cut: end both, at once (no graceful close)
            self._connections.discard(task)
            for side in (writer, upstream_writer):
                if side is not None:
                    side.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; chunks are queued with the time they are due, so that latency adds
        to each chunk once instead of piling up."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    raise ConnectionResetError("the other side closed")
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await self._gate()
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                await self._gate()
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data or delivering.done():
                    break
            await delivering  # raises once the queued bytes are out, ending the connection
        finally:
            delivering.cancel()

    async def _gate(self) -> None:
        if not self._flowing.is_set():
            self.held += 1
            try:
                await self._flowing.wait()
            finally:
                self.held -= 1


class ProxyThread:
    """Proxies on an event loop in a daemon thread; their mode methods, callable from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fault-proxies", daemon=True)
        self.thread.start()
        self.proxies: list[ThreadedProxy] = []

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self, upstream: tuple[str, int]) -> "ThreadedProxy":
        proxy = self.call(_make(upstream))
        self.call(proxy.start())
        self.proxies.append(ThreadedProxy(self, proxy))
        return self.proxies[-1]

    def stop(self) -> None:
        for proxy in self.proxies:
            self.call(proxy.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _make(upstream: tuple[str, int]) -> Proxy:
    return Proxy(upstream)  # made on the loop that runs it (its asyncio.Event belongs there)


class ThreadedProxy:
    def __init__(self, owner: ProxyThread, proxy: Proxy) -> None:
        self.owner, self.proxy = owner, proxy

    port = property(lambda self: self.proxy.port)
    address = property(lambda self: self.proxy.address)
    held = property(lambda self: self.proxy.held)
    open_connections = property(lambda self: self.proxy.open_connections)

    def cut(self) -> None:
        self.owner.call(self.proxy.cut())

    def freeze(self) -> None:
        self.owner.call(self.proxy.freeze())

    def slow(self, seconds: float) -> None:
        self.owner.call(self.proxy.slow(seconds))

    def retarget(self, upstream: tuple[str, int]) -> None:
        self.owner.call(self.proxy.retarget(upstream))

    def restore(self) -> None:
        self.owner.call(self.proxy.restore())
