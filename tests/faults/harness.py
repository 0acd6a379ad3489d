"""The fault suite's stage: two real server processes whose PostgreSQL and Redis connections go
through fault proxies, a room of users, a fleet of clients, and one scenario run from start to
verdict.

A scenario runs once per test module (a module-scoped fixture): clients send before, during and
after a fault; then the run is judged by several tests, each one requirement, so that a
requirement the application does not meet yet is one xfail test, not a whole scenario lost.
"""

import asyncio
import inspect
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlparse

import psutil
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import ROOT, LiveServers, free_port, room_with, server_env, wait_for_port, wait_until
from tests.faults import checks
from tests.faults.clients import ANSWER_BOUND, Client, Fleet, RestClient, Run, Send, SocketClient, now
from tests.faults.proxy import ProxyThread

FULL = os.environ.get("PARLEY_FAULTS") == "full"
RESULTS = ROOT / ".data" / "faults" / ("results.json" if FULL else "results-quick.json")


class Stack:
    """Server processes (LiveServers: uvicorn as scripts/serve.py runs it) reaching PostgreSQL and
    Redis only through proxies (`pg`, `redis`) that tests cut, freeze, slow and restore."""

    def __init__(self, servers: int = 2, **env: str) -> None:
        db = connection.settings_dict
        if not db["HOST"] or db["HOST"].startswith("/"):
            pytest.skip("the fault suite reaches PostgreSQL over TCP (DATABASE_URL names a unix socket)")
        self.proxies = ProxyThread()
        self.pg = self.proxies.start((db["HOST"], int(db["PORT"] or 5432)))
        redis = urlparse(settings.REDIS_URL)
        self.redis = self.proxies.start((redis.hostname or "127.0.0.1", redis.port or 6379))
        userinfo = redis.netloc.rpartition("@")[0]
        redis_url = redis._replace(netloc=(f"{userinfo}@" if userinfo else "") + self.redis.address).geturl()
        password = quote(db["PASSWORD"] or "", safe="")
        self.env = {
            "DATABASE_URL": f"postgres://{quote(db['USER'] or '', safe='')}:{password}@{self.pg.address}/{db['NAME']}",
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL_URLS": redis_url,
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.live = LiveServers()
        self.killed: list[tuple[str, float]] = []  # (server, when), shared with the Run
        self.people: People | None = None  # the users of the scenario running on it
        self.supervisor: subprocess.Popen | None = None  # scripts/serve.py, when serve_py() ran
        self.urls: list[str] = []
        try:
            for _ in range(servers):
                self.serve()
        except BaseException:
            self.stop()
            raise

    def serve(self) -> str:
        """One more server process (with `self.env` as it is now)."""
        self.urls.append(self.live(**self.env))
        return self.urls[-1]

    def serve_py(self, workers: int) -> str:
        """scripts/serve.py with `workers` uvicorn workers on one address (the production entry
        point: it restarts a worker that dies)."""
        port = free_port()
        self.supervisor = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py"), "--workers", str(workers), "--port", str(port)],
            cwd=ROOT,
            env=server_env() | self.env | {"HOST": "127.0.0.1"},
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: len(self.workers()) == workers, timeout=30, what=f"{workers} serve.py workers")
        wait_for_port(port, self.supervisor)
        self.urls.append(f"http://127.0.0.1:{port}")
        return self.urls[-1]

    def workers(self) -> list[int]:
        """The pids of serve.py's workers."""
        try:
            return [child.pid for child in psutil.Process(self.supervisor.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill_worker(self) -> int:
        """SIGKILL the serve.py worker holding the most open connections (the kernel hands
        connections to whichever worker accepts first); recorded like a killed server."""
        port = int(self.urls[0].rsplit(":", 1)[1])

        def held(pid: int) -> int:
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                return 0
            return sum(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in connections)

        pid = max(self.workers(), key=held)
        self.killed.append((self.urls[0], time.monotonic()))
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self, index: int) -> str:
        """SIGKILL server `index` (recorded: its sockets drop without a close frame)."""
        url = self.urls[index]
        self.killed.append((url, time.monotonic()))
        self.live.kill(url)
        return url

    def start(self, index: int) -> str:
        """Start server `index` again, on its port."""
        return self.live(int(self.urls[index].rsplit(":", 1)[1]), **self.env)

    def stop(self) -> None:
        for proxy in self.proxies.proxies:
            proxy.restore()  # a frozen dependency would hold up the servers' graceful stop
        self.live.stop_all()
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.terminate()  # serve.py stops its workers
            try:
                self.supervisor.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisor.pid, signal.SIGKILL)
        self.proxies.stop()


@dataclass
class People:
    users: list
    tokens: list[str]
    room: str

    def minter(self, index: int) -> Callable[[], str]:
        """Makes a new access token for user `index` (as the token endpoint would)."""
        from rest_framework_simplejwt.tokens import AccessToken

        user = self.users[index]
        return lambda: str(AccessToken.for_user(user))


def people(count: int, prefix: str) -> People:
    """`count` users (their own names: sends are per user), all members of one private room."""
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    users = [
        User.objects.create_user(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", password="unused-password")
        for i in range(count)
    ]
    room = room_with(users[0], f"{prefix} room", "private", members={user: "member" for user in users[1:]})
    return People(users, [str(AccessToken.for_user(user)) for user in users], str(room.pk))


def fleet_for(
    run: Run,
    who: People,
    *,
    sockets_per_server: int = 2,
    rests_per_server: int = 1,
    interval: float = 0.15,
    rest_interval: float = 0.25,
    padding: int = 0,
) -> Fleet:
    """Socket and REST clients spread over the servers (each its own user, from `who`). They send
    at ~6 and ~4 messages a second: under the product's rate limits (10/s per socket, 300/min per
    user over REST), which are not what this suite is about."""
    servers = len(run.servers)
    tokens = iter(who.minter(i) for i in range(len(who.users)))
    sockets = [
        SocketClient(run, f"ws{i}", next(tokens), home=i % servers, interval=interval, padding=padding)
        for i in range(sockets_per_server * servers)
    ]
    rests = [
        RestClient(run, f"rest{i}", next(tokens), home=i % servers, interval=rest_interval, padding=padding)
        for i in range(rests_per_server * servers)
    ]
    return Fleet(run, sockets, rests)


async def call(action: Callable | None) -> None:
    """Run a fault's action without stalling the clients: a blocking one (starting a server waits
    for its port) in a thread; what it returns, if awaitable, on the loop (async actions)."""
    if action is not None and inspect.isawaitable(result := await asyncio.to_thread(action)):
        await result


@dataclass
class Result:
    """One scenario's run, judged: its figures and the problems each check found."""

    name: str
    title: str
    run: Run
    clients: list[Client]
    truth: checks.Truth
    figures: dict
    probes: list[str] = field(default_factory=list)

    def save(self) -> None:
        """Write the figures to the results file (again, after a scenario added some)."""
        record(self.name, self.title, self.figures | {"probe_problems": len(self.probes)})

    def problems(self, *names: str) -> list[str]:
        found = []
        for name in names:
            if name == "probes":
                found += self.probes
            elif name == "views":
                found += checks.views(self.clients, self.truth)
            elif name in ("lost", "duplicates"):
                found += getattr(checks, name)(self.run, self.truth)
            else:
                found += getattr(checks, name)(self.run)
        return found


INTEGRITY = ("lost", "duplicates", "views", "live_order")  # 0 lost, 0 duplicated, 0 reordered


async def drive(
    stack: Stack,
    who: People,
    *,
    fault: Callable | None,
    restore: Callable | None,
    before: float = 2.0,
    outage: float = 3.0,
    after: float = 5.0,
    probes_per_server: int = 3,
    **fleet_options,
) -> tuple[Run, Fleet, checks.Truth, list[str]]:
    """Clients send for `before` seconds, `fault()`, `outage` seconds, `restore()`, `after`
    seconds; then they stop, new sockets are opened on every server (probes: each must become
    ready and get a message live), every client catches up, and the database is read."""
    run = Run(who.room, list(stack.urls), killed=stack.killed)
    fleet = fleet_for(run, who, **fleet_options)
    await fleet.connect()
    run.mark("start")
    fleet.start_sending()
    await asyncio.sleep(before)
    run.mark("fault")
    await call(fault)
    await asyncio.sleep(outage)
    await call(restore)
    run.mark("restore")
    await asyncio.sleep(after)
    run.mark("end")
    await fleet.stop_sending()
    probes = await probe(run, fleet, who, stack.urls, probes_per_server)
    truth = await asyncio.to_thread(checks.db_truth, who.room)
    await fleet.catch_up(truth.last_sequence)
    await fleet.close()
    return run, fleet, truth, probes


async def probe(run: Run, fleet: Fleet, who: People, servers: list[str], per_server: int) -> list[str]:
    """New sockets on every server after the fault: each gets session.ready and a new message live."""
    if not per_server:
        return []
    sender = fleet.rests[0] if fleet.rests else None
    clients = [
        SocketClient(run, f"probe{i}", who.minter(i % len(who.users)), home=i % len(servers), interval=0)
        for i in range(per_server * len(servers))
    ]
    problems = []
    for client in clients:
        client.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), ANSWER_BOUND)
    except TimeoutError:
        problems.append(
            f"{sum(not c.connected.is_set() for c in clients)} new sockets not ready within {ANSWER_BOUND}s"
        )
    for client in clients:
        if client.connection is not None and client.connection.server != client.servers()[0]:
            problems.append(f"{client.name}: could not connect to {client.servers()[0]}")
    fleet.sockets += clients
    if sender is None:
        return problems
    send = Send(sender.name, 0, str(uuid.uuid4()), "probe", now())
    run.sends.append(send)
    deadline = now() + ANSWER_BOUND
    while send.acked_at is None and send.gave_up is None and now() < deadline:
        await sender.attempt(send)
    if send.acked_at is None:
        return [*problems, "the probe message was not acked"]
    start = send.succeeded.started
    while now() < start + 2 * checks.LIVE_BOUND:
        if all(c.connection and send.sequence in c.connection.first_live() for c in clients):
            break
        await asyncio.sleep(0.01)
    for client in clients:
        when = client.connection.first_live().get(send.sequence) if client.connection else None
        if when is None or when - start > checks.LIVE_BOUND:
            late = f"after {when - start:.1f}s" if when is not None else "not at all"
            problems.append(
                f"{client.name} on {client.connection.server if client.connection else '?'}: probe live {late}"
            )
    return problems


def judge(
    name: str,
    title: str,
    run: Run,
    fleet: Fleet,
    truth: checks.Truth,
    probes: list[str],
    recovery_since: str = "restore",
) -> Result:
    figures = checks.figures(run, fleet.clients, truth, recovery_since)
    result = Result(name, title, run, fleet.clients, truth, figures, probes)
    result.save()
    return result


def record(name: str, title: str, figures: dict) -> None:
    """Merge one scenario's figures into the results file (tests/faults/report.py renders it)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        results = {}
    results.setdefault("scenarios", {})[name] = {
        "title": title,
        "at": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {platform.system()}",
        **figures,
    }
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


def outage_scenario(
    name: str,
    title: str,
    fault: Callable[[Stack], object],
    restore: Callable[[Stack], object],
    *,
    outage: float,
    after: float,
    env: dict[str, str] | None = None,
    recovery_since: str = "restore",
    serve_workers: int | None = None,
    users: int = 8,
    **options,
) -> Result:
    """The common shape: two servers, `users` (8) users in a room (2 sockets and 1 REST client per
    server, plus probes), `fault(stack)` for `outage` seconds, `restore(stack)`, `after` seconds.
    With `serve_workers`, one scripts/serve.py with that many workers on one address instead
    (the same clients, all on it)."""
    stack = Stack(servers=0 if serve_workers else 2, **(env or {}))
    if serve_workers:
        stack.serve_py(serve_workers)
        options = {"sockets_per_server": 4, "rests_per_server": 2, "probes_per_server": 6, **options}
    try:
        who = stack.people = people(users, f"{name}-")

        async def body() -> Result:
            run, fleet, truth, probes = await drive(
                stack,
                who,
                fault=lambda: fault(stack),
                restore=lambda: restore(stack),
                outage=outage,
                after=after,
                **options,
            )
            return judge(name, title, run, fleet, truth, probes, recovery_since)

        return asyncio.run(body())
    finally:
        stack.stop()


def assert_recovered(result: Result, bound: float) -> None:
    """Recovery (figures["recovery_s"], from the moment it counts from) within `bound` seconds;
    if not, the last things that went wrong say why."""
    recovery, since = result.figures["recovery_s"], result.figures["recovery_since"]
    if recovery is not None and recovery <= bound:
        return
    setbacks = [f"{checks.at(result.run, moment)} {what}" for moment, what in checks.setbacks(result.run, since)]
    raise AssertionError(
        f"not recovered within {bound}s of the {since} (took {recovery}s); the last setbacks:\n"
        + "\n".join(setbacks[-15:])
    )


def assert_none(problems: list[str], what: str) -> None:
    assert problems == [], f"{what}: {len(problems)} problem(s):\n" + "\n".join(problems[:30])
