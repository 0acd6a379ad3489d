"""The fault suite's clients: real sockets (the websockets library) and REST, as a mobile app uses them.

Every client sends numbered messages to one room, each with its own `client_msg_id`, one after
another (the next once the last was acked, after `interval`), and behaves as docs/protocol.md asks
a client to:

- a send that is not answered within ANSWER_BOUND, or answered `unavailable`, `internal` or
  `rate_limited`, is sent again with the SAME client_msg_id (idempotent), after `retry_after_ms`
  when the answer carries one (at most RETRY_CAP);
- a socket that drops is reconnected (a new ticket over REST, from its home server or else the
  other one, with a short jittered back-off) and syncs the room from the last number it has;
- a live jump in the numbers (42 then 44) triggers a sync too.

Nothing is asserted here: everything that happens is recorded in a `Run` (every attempt with its
outcome and times, every socket's live numbers and close code, every API error body), and
tests/faults/checks.py judges it. All times are time.monotonic() of this one process.
"""

import asyncio
import http.client
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlparse

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ANSWER_BOUND = 10.0  # every send must be answered (ack or a clear error) within this (issue 12)
RETRYABLE = {"unavailable", "internal", "rate_limited"}
# At most this long between retries, whatever retry_after_ms says (the server's hint is 1 s): the
# suite retries sooner to measure recovery to a quarter of a second.
RETRY_CAP = 0.25
TRANSPORT_FAILURES = {"refused", "reset", "no_answer"}  # no HTTP answer at all
RECONNECT_CAP = 1.0  # the jittered reconnect back-off stays under this (the web UI's caps at 30 s)
TOKEN_RENEWAL = 240.0  # seconds after which a client makes itself a new access token

_http_pool = ThreadPoolExecutor(max_workers=48, thread_name_prefix="fault-http")


def now() -> float:
    return time.monotonic()


# -- what happened ------------------------------------------------------------------------------


@dataclass
class Attempt:
    started: float
    via: str  # the server (base URL) it went to
    ended: float | None = None
    # "ack"; an error code ("unavailable", "http_502"...); "closed:<close code>"; "refused", "reset",
    # "no_answer" (nothing within ANSWER_BOUND)
    outcome: str = ""


@dataclass
class Send:
    client: str
    number: int
    client_msg_id: str
    content: str
    first_at: float
    attempts: list[Attempt] = field(default_factory=list)
    acked_at: float | None = None
    sequence: int | None = None
    message_id: str | None = None
    gave_up: str | None = None  # a non-retryable error code (never expected)

    @property
    def succeeded(self) -> Attempt | None:
        return self.attempts[-1] if self.acked_at is not None else None


@dataclass
class Connection:
    """One socket, from its handshake to its close."""

    client: str
    server: str
    opened_at: float
    ready_at: float | None = None
    ready_sequence: int | None = None
    closed_at: float | None = None
    close_code: int | None = None  # the code of the server's close frame; None: none came (1006)
    close_reason: str = ""
    closed_by: str = ""  # "client" (we closed it) or "server"
    live: list[tuple[int, float]] = field(default_factory=list)  # (number, when) of live message.new
    _first: dict[int, float] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)

    def first_live(self) -> dict[int, float]:
        """{number: when it first came live} (kept up to date as `live` grows)."""
        for number, when in self.live[self._indexed :]:
            self._first.setdefault(number, when)
        self._indexed = len(self.live)
        return self._first


@dataclass
class Run:
    """Everything a scenario's clients did and saw."""

    room: str
    servers: list[str]
    sends: list[Send] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # code (or "no_answer", "refused"...) -> count
    non_json: list[str] = field(default_factory=list)  # API answers that were not a JSON error body
    marks: dict[str, float] = field(default_factory=dict)  # "fault", "restore", ... -> time
    killed: list[tuple[str, float]] = field(default_factory=list)  # (server, when) SIGKILLed on purpose
    notes: list[str] = field(default_factory=list)

    def mark(self, name: str) -> float:
        self.marks[name] = now()
        return self.marks[name]

    def error(self, code: str) -> None:
        self.errors[code] += 1


# -- REST ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (see `failure`)
    body: dict | list | None = None
    content_type: str = ""
    raw: bytes = b""
    failure: str = ""  # "refused", "reset", "no_answer"
    retry_after: float | None = None

    @property
    def code(self) -> str:
        if self.failure:
            return self.failure
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return f"http_{self.status}"

    @property
    def is_json(self) -> bool:
        return self.content_type.startswith("application/json") and self.body is not None


def _request(method: str, url: str, body: dict | None, token: str | None, timeout: float) -> Answer:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except ConnectionRefusedError:
        return Answer(0, failure="refused")
    except TimeoutError:
        return Answer(0, failure="no_answer")
    except (OSError, http.client.HTTPException):
        return Answer(0, failure="reset")
    finally:
        connection.close()
    content_type = response.getheader("Content-Type") or ""
    try:
        parsed_body = json.loads(raw) if raw else None
    except ValueError:
        parsed_body = None
    retry_after = response.getheader("Retry-After")
    if isinstance(parsed_body, dict) and isinstance(parsed_body.get("error"), dict):
        if "retry_after_ms" in parsed_body["error"]:
            retry_after = parsed_body["error"]["retry_after_ms"] / 1000
    return Answer(
        response.status,
        parsed_body,
        content_type,
        raw,
        retry_after=float(retry_after) if retry_after is not None else None,
    )


async def http_json(
    method: str, url: str, body: dict | None = None, token: str | None = None, timeout: float = ANSWER_BOUND
) -> Answer:
    return await asyncio.get_running_loop().run_in_executor(_http_pool, _request, method, url, body, token, timeout)


def note_api_error(run: Run, what: str, answer: Answer, *, count: bool = True) -> None:
    """Count an unsuccessful API answer by code; remember any that is not a JSON error body."""
    if count:
        run.error(answer.code)
    if answer.status and not (answer.is_json and isinstance(answer.body, dict) and "error" in answer.body):
        run.non_json.append(f"{what}: {answer.status} {answer.content_type} {answer.raw[:120]!r}")


def retry_wait(retry_after: float | None) -> float:
    return min(RETRY_CAP, max(0.05, retry_after if retry_after is not None else 0.2))


# -- clients ------------------------------------------------------------------------------------


class Client:
    """What socket and REST clients share: identity, the numbered send loop, the room as seen."""

    def __init__(
        self, run: Run, name: str, token: str | Callable[[], str], home: int, interval: float, padding: int = 0
    ) -> None:
        """`token`: an access token, or a function that makes a new one (renewed before it expires)."""
        self.run, self.name, self.home, self.interval = run, name, home, interval
        self._mint = token if callable(token) else lambda: token
        self._token, self._minted = self._mint(), now()
        self.padding = " " + "x" * padding if padding else ""  # makes each message that much longer
        self.view: dict[int, str] = {}  # number -> message id, as this client has applied it
        self.conflicts: list[str] = []  # a number seen with two different messages
        self.sending = True
        self.sent = 0

    @property
    def token(self) -> str:
        """The access token, renewed as an app does before it expires (they live 5 minutes)."""
        if now() - self._minted > TOKEN_RENEWAL:
            self._token, self._minted = self._mint(), now()
        return self._token

    def servers(self) -> list[str]:
        """Home server first, then the others."""
        servers = self.run.servers
        return servers[self.home % len(servers) :] + servers[: self.home % len(servers)]

    def apply(self, number: int, message: dict) -> None:
        known = self.view.setdefault(number, message["id"])
        if known != message["id"]:
            self.conflicts.append(f"{self.name}: #{number} was {known}, then {message['id']}")

    @property
    def contiguous(self) -> int:
        """The highest number up to which this client has every change."""
        number = 0
        while number + 1 in self.view:
            number += 1
        return number

    async def send_loop(self, drain_until: list[float]) -> None:
        """Send numbered messages until told to stop; the one in flight then still gets its
        answer, until `drain_until[0]`."""
        number = 0
        while self.sending:
            number += 1
            content = f"{self.name} #{number}{self.padding}"
            send = Send(self.name, number, str(uuid.uuid4()), content, now())
            self.run.sends.append(send)
            while send.acked_at is None and send.gave_up is None:
                if not self.sending and now() > drain_until[0]:
                    break
                await self.attempt(send)
            self.sent += 1
            if self.sending:
                await asyncio.sleep(self.interval)

    async def attempt(self, send: Send) -> None:
        raise NotImplementedError

    def acked(self, send: Send, attempt: Attempt, message: dict) -> None:
        attempt.ended = send.acked_at = now()
        attempt.outcome = "ack"
        send.sequence, send.message_id = message["sequence"], message["id"]

    def failed(self, send: Send, attempt: Attempt, code: str) -> bool:
        """Record a failed attempt; whether to try again (a code not worth retrying ends the send)."""
        attempt.ended = now()
        attempt.outcome = code
        self.run.error(code)
        if code in RETRYABLE or code in TRANSPORT_FAILURES or code.startswith(("closed:", "http_5")):
            return True
        send.gave_up = code
        return False


class RestClient(Client):
    """Sends over REST (POST messages/, JWT); reads the room over GET changes/ at the end."""

    async def attempt(self, send: Send) -> None:
        server = self.servers()[0]
        attempt = Attempt(now(), server)
        send.attempts.append(attempt)
        body = {"content": send.content, "client_msg_id": send.client_msg_id}
        answer = await http_json("POST", f"{server}/api/v1/rooms/{self.run.room}/messages/", body, self.token)
        if answer.status in (200, 201) and answer.is_json:
            self.acked(send, attempt, answer.body)
            return
        if answer.status:
            note_api_error(self.run, f"POST messages/ via {server}", answer, count=False)  # failed() counts
        if answer.failure in ("refused", "reset"):
            self.home += 1  # that server is gone: the next attempt goes to another one
        if self.failed(send, attempt, answer.code):
            await asyncio.sleep(0 if answer.failure == "no_answer" else retry_wait(answer.retry_after))

    async def catch_up(self, until: float) -> None:
        """Read every change of the room (GET changes/ page by page) into the view."""
        after = 0
        while now() < until:
            answer = await http_json(
                "GET",
                f"{self.servers()[0]}/api/v1/rooms/{self.run.room}/changes/?after_sequence={after}",
                None,
                self.token,
            )
            if answer.status != 200 or not answer.is_json:
                if answer.status:
                    note_api_error(self.run, "GET changes/", answer)
                self.home += answer.failure in ("refused", "reset")
                await asyncio.sleep(retry_wait(answer.retry_after))
                continue
            for event in answer.body["results"]:
                self.apply(event["sequence"], event["message"])
            after = answer.body["last_sequence"]
            if not answer.body["has_more"]:
                return


class SocketClient(Client):
    """One socket (a ticket from REST, then /ws/?ticket=), kept open: it reconnects after any
    drop and syncs from its last number; it sends over the socket."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.socket: ClientConnection | None = None
        self.connection: Connection | None = None
        self.connected = asyncio.Event()
        self.waiting: dict[str, asyncio.Future] = {}  # client_msg_id -> its answer
        self.syncing = False
        self.keep_open = True
        self.task: asyncio.Task | None = None

    # connection management

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.keep_connected())

    async def keep_connected(self) -> None:
        failures = 0
        while self.keep_open:
            server = self.servers()[failures % len(self.run.servers)]
            if await self.connect_once(server):
                failures = 0
                await self.read_until_closed()
            else:
                failures += 1
            if self.keep_open:
                await asyncio.sleep(random.uniform(0, min(RECONNECT_CAP, 0.05 * 2**failures)))

    async def connect_once(self, server: str) -> bool:
        answer = await http_json("POST", f"{server}/api/v1/auth/ws-ticket/", {}, self.token)
        if answer.status != 200 or not answer.is_json:
            if answer.status:
                note_api_error(self.run, f"POST ws-ticket/ via {server}", answer)
            else:
                self.run.error(f"ticket_{answer.failure}")
            return False
        url = server.replace("http", "ws", 1) + f"/ws/?ticket={answer.body['ticket']}"
        connection = Connection(self.name, server, now())
        try:
            self.socket = await connect(url, open_timeout=ANSWER_BOUND, close_timeout=2, ping_interval=None)
        except InvalidStatus as error:
            self.run.error(f"handshake_{error.response.status_code}")
            return False
        except (OSError, TimeoutError):
            self.run.error("connect_failed")
            return False
        self.run.connections.append(connection)
        self.connection = connection
        return True

    async def read_until_closed(self) -> None:
        socket, connection = self.socket, self.connection
        assert socket is not None and connection is not None
        try:
            while True:
                raw = await socket.recv()
                self.handle(json.loads(raw), connection)
        except ConnectionClosed as closed:
            connection.closed_at = now()
            connection.closed_by = connection.closed_by or "server"
            connection.close_code = closed.rcvd.code if closed.rcvd is not None else None
            connection.close_reason = closed.rcvd.reason if closed.rcvd is not None else ""
            if connection.closed_by == "server":
                self.run.error(f"closed:{connection.close_code or 1006}")
        finally:
            self.connected.clear()
            self.socket = None
            self.syncing = False
            for future in self.waiting.values():
                if not future.done():
                    future.set_result(("closed", connection.close_code or 1006, None))

    def handle(self, frame: dict, connection: Connection) -> None:
        kind = frame.get("type")
        if kind == "message.new":
            connection.live.append((frame["sequence"], now()))
            self.apply(frame["sequence"], frame["message"])
            if frame["sequence"] > self.contiguous + 1:
                self.sync()  # a jump: sync from what we have
        elif kind == "sync.batch":
            for event in frame["events"]:
                self.apply(event["sequence"], event["message"])
            if not frame["has_more"]:
                self.syncing = False
                if frame["last_sequence"] > self.contiguous:
                    self.sync()
        elif kind == "message.ack":
            future = self.waiting.get(frame["client_msg_id"])
            if future is not None and not future.done():
                future.set_result(("ack", frame["message"], None))
        elif kind == "error":
            future = self.waiting.get(frame.get("ref") or "")
            if future is not None and not future.done():
                retry_after = frame.get("retry_after_ms")
                future.set_result(("error", frame["code"], retry_after / 1000 if retry_after else None))
            else:
                self.run.error(f"stray:{frame['code']}")
                self.syncing = False  # e.g. a sync refused while the database is away
        elif kind == "session.ready":
            connection.ready_at = now()
            connection.ready_sequence = frame["rooms"].get(self.run.room, 0)
            self.connected.set()
            if connection.ready_sequence > self.contiguous:
                self.sync()

    def sync(self) -> None:
        if self.syncing or self.socket is None:
            return
        self.syncing = True
        frame = {"type": "sync", "room": self.run.room, "after_sequence": self.contiguous}
        asyncio.get_running_loop().create_task(self._send_quietly(frame))

    async def _send_quietly(self, frame: dict) -> None:
        try:
            if self.socket is not None:
                await self.socket.send(json.dumps(frame))
        except ConnectionClosed:
            pass

    async def close(self) -> None:
        self.keep_open = False
        if self.connection is not None and self.socket is not None:
            self.connection.closed_by = "client"
            await self.socket.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5)
            except TimeoutError:
                self.task.cancel()

    # sending

    async def attempt(self, send: Send) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), ANSWER_BOUND)
        except TimeoutError:
            return  # not connected yet: keeps trying to (not an attempt: nothing was sent)
        socket, connection = self.socket, self.connection
        if socket is None or connection is None:
            return
        attempt = Attempt(now(), connection.server)
        send.attempts.append(attempt)
        future = self.waiting[send.client_msg_id] = asyncio.get_running_loop().create_future()
        frame = {"type": "message.send", "room": self.run.room, "content": send.content}
        try:
            await socket.send(json.dumps(frame | {"client_msg_id": send.client_msg_id}))
            kind, value, retry_after = await asyncio.wait_for(asyncio.shield(future), ANSWER_BOUND)
        except ConnectionClosed:
            kind, value, retry_after = "closed", connection.close_code or 1006, None
        except TimeoutError:
            kind, value, retry_after = "no_answer", None, None
        finally:
            self.waiting.pop(send.client_msg_id, None)
        if kind == "ack":
            self.acked(send, attempt, value)
        elif kind == "no_answer":
            self.failed(send, attempt, "no_answer")
        elif kind == "closed":
            self.failed(send, attempt, f"closed:{value}")
        elif self.failed(send, attempt, value):
            await asyncio.sleep(retry_wait(retry_after))

    async def catch_up(self, until: float, last: int) -> bool:
        """Sync until the view reaches `last` (the room's last number), reconnecting if need be."""
        while now() < until:
            if self.contiguous >= last:
                return True
            if self.connected.is_set() and not self.syncing:
                self.sync()
            await asyncio.sleep(0.02)
        return self.contiguous >= last


# -- a fleet of them ----------------------------------------------------------------------------


class Fleet:
    """Socket and REST clients sending to one room; start() them, then stop() and catch_up()."""

    def __init__(self, run: Run, sockets: list[SocketClient], rests: list[RestClient]) -> None:
        self.run, self.sockets, self.rests = run, sockets, rests
        self.senders: list[asyncio.Task] = []
        self.drain_until = [float("inf")]

    @property
    def clients(self) -> list[Client]:
        return [*self.sockets, *self.rests]

    async def connect(self, timeout: float = 20) -> None:
        """Open every socket and wait for its session.ready (before anything goes wrong)."""
        for client in self.sockets:
            client.start()
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in self.sockets)), timeout)

    def start_sending(self) -> None:
        loop = asyncio.get_running_loop()
        self.senders = [loop.create_task(client.send_loop(self.drain_until)) for client in self.clients]

    async def stop_sending(self, drain: float = 2 * ANSWER_BOUND) -> None:
        """No new messages; the ones in flight get until `drain` seconds from now to be acked."""
        self.drain_until[0] = now() + drain
        for client in self.clients:
            client.sending = False
        done, pending = await asyncio.wait(self.senders, timeout=drain + ANSWER_BOUND + 1)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()

    async def catch_up(self, last: int, timeout: float = 15) -> None:
        until = now() + timeout
        await asyncio.gather(
            *(client.catch_up(until, last) for client in self.sockets),
            *(client.catch_up(until) for client in self.rests),
        )

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.sockets))
