"""The floor of a connect on this box: an ASGI app that does nothing but accept (issue 15).

bench/load.py's connect scenario ends with a `bare` phase: the same sockets, with the same
generator, headers and concurrency, opened against this app served by uvicorn with production's
options (scripts/serve.py's UVICORN_OPTIONS and backlog, as many workers). Each socket is accepted
and sent one `session.ready` frame, the first frame the generator waits for; no authentication, no
database, no Redis, no rooms. What it reaches is what uvicorn, the websockets handshake, the
kernel's loopback TCP and the generator itself allow on this machine: Parley's own connects are
read against it in the same run.

HTTP requests are answered 200 (the benchmark's start-up probe asks for /login/).
"""

READY = '{"type":"session.ready","user":0,"rooms":{},"unread":{}}'


async def app(scope: dict, receive, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": READY})
    while (await receive())["type"] != "websocket.disconnect":
        pass
