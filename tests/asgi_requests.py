"""One HTTP request through an ASGI handler, in-process (Django's, as uvicorn runs it or on a given
executor): tests/test_transports_threads.py, tests/test_threads.py."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

from core import threads


class Request:
    """One HTTP request through Django's ASGI handler, in-process; its client hangs up on `cut()`."""

    def __init__(
        self,
        handler: ASGIHandler,
        executor: ThreadPoolExecutor | threads.Pool | None,
        path: str,
        token: str,
        query: str = "",
        method: str = "GET",
    ):
        self.messages: list[dict] = []
        self.gone = asyncio.Event()
        self.body_sent = False
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("localhost", 80),
        }

        async def run() -> None:
            if executor is None or isinstance(executor, threads.Pool):  # as config.asgi serves it
                await threads.serve(handler, executor)(scope, self.receive, self.send)
                return
            async with ThreadSensitiveContext(executor=executor):  # every request's sync work: this pool
                await handler(scope, self.receive, self.send)

        self.task = asyncio.get_running_loop().create_task(run())

    async def receive(self) -> dict:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.messages.append(message)

    def status(self) -> int | None:
        return next((m["status"] for m in self.messages if m["type"] == "http.response.start"), None)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    def cut(self) -> None:
        self.gone.set()
