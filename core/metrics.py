"""Every Prometheus metric of Parley, defined once (names and meanings: docs/metrics.md).

prometheus-client runs in multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (scripts/serve.py
and scripts/stack.py set it for the web workers and Celery, a fresh directory per start): each
process writes its values to memory-mapped files there, and `/metrics` (core/health.py) adds them
up over every process, live or dead (counters, histograms) or over the live ones (gauges of open
connections and pools; a dead worker's are removed by serve.py and Celery's shutdown signal).
Without it (tests, management commands) the values stay in the process.

Cheap on the hot path (chat at 1,000+ messages a second on 2 cores): labelled children are bound
once (at import or on first use, cached in a dict), never looked up per event; fan-out counts once
per event (`inc(len(members))`), not once per socket; a send batch is one observation. An
increment in multiprocess mode takes a lock, checks the pid (a fork resets the files) and writes 8
bytes into the mmap, ~1.3 µs (bench/metrics_inc.py, docs/performance.md), so the per-frame and
per-event figures (frames in and out, deliveries and their latency, bus events) are not written
where they happen: they are appended to a per-process tally (a deque append, ~50 ns, safe from any
thread) that a daemon thread writes out once a second, summed per series, and that a process
writes out before it answers a scrape and when it exits. Another process's last second may thus
show one second late.

Label values never come from clients unchecked: frame types and close codes outside the known
sets are counted as "unknown" / "other", so a hostile client cannot grow the number of series.
"""

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Iterable

# The directory must exist before the first metric is made (prometheus-client opens its file then).
_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _DIR:
    os.makedirs(_DIR, exist_ok=True)

from prometheus_client import REGISTRY as _PROCESS_REGISTRY  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402

MULTIPROCESS = bool(_DIR)


def worker() -> str:
    """Which process this is, for the per-process series (bus events) and /healthz:
    scripts/serve.py names its workers web-0, web-1... (stable across restarts); otherwise the
    pid. Read when asked, not at import: serve.py's uvicorn workers are forks of a process that
    imported this module before they had a name."""
    return os.environ.get("PARLEY_WORKER") or str(os.getpid())


TRANSPORTS = ("socket", "sse", "poll")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- connections and frames -----------------------------------------------------------------------

CONNECTIONS_OPEN = Gauge(
    "parley_connections_open",
    "Client connections open now, by transport (socket, sse, poll: a long-poll waiting for events).",
    ["transport"],
    multiprocess_mode="livesum",
)
CONNECTIONS = Counter(
    "parley_connections", "Client connections accepted, by transport (poll: each poll request).", ["transport"]
)
DISCONNECTS = Counter(
    "parley_disconnects",
    "Client connections ended, by transport and WebSocket close code (sse/poll: 'stream').",
    ["transport", "code"],
)
FRAMES_RECEIVED = Counter("parley_frames_received", "WebSocket frames received from clients, by frame type.", ["type"])
FRAMES_SENT = Counter(
    "parley_frames_sent",
    "WebSocket frames a socket sent itself (answers, acks, errors, relays), by frame type; numbered room "
    "changes fanned out to sockets are parley_event_deliveries_total{event='room.sequenced'}.",
    ["type"],
)
EVENT_DELIVERIES = Counter(
    "parley_event_deliveries",
    "Events the hub handed to this process's sockets and streams (one per member), by event type.",
    ["event"],
)
ERRORS = Counter(
    "parley_errors", "Error answers by stable error code and transport (socket, http).", ["code", "transport"]
)
SLOW_CONSUMER_CLOSES = Counter(
    "parley_slow_consumer_closes",
    "Connections ended because the client left too much unread (socket: 4429; sse/poll: frames dropped).",
    ["transport"],
)
GAP_FILLS = Counter(
    "parley_gap_fills",
    "Database reads that filled a hole in a room's numbered changes (pub/sub lost or reordered an event).",
    ["transport"],
)

# -- sends and delivery ---------------------------------------------------------------------------

SEND_BATCH_SIZE = Histogram(
    "parley_send_batch_size",
    "message.send frames written to PostgreSQL together, per batch (messaging.consumers.write_batches).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
DELIVERY_LATENCY = Histogram(
    "parley_delivery_latency_seconds",
    "From a numbered room change's commit (its publication) to its hand-over to every socket of a "
    "process, per event and process (wall clocks: across hosts, their skew counts too).",
    buckets=LATENCY_BUCKETS,
)

# -- the bus between processes (core/pubsub.py, core/hub.py) --------------------------------------

BUS_PUBLISHED = Counter(
    "parley_bus_events_published", "Events this process queued for Redis pub/sub (one per group).", ["worker"]
)
BUS_RECEIVED = Counter(
    "parley_bus_events_received", "Events this process received from other processes over Redis.", ["worker"]
)
BUS_DROPPED = Counter(
    "parley_bus_events_dropped",
    "Events that never reached Redis (redis: publishing failed; queue_full: too many waited).",
    ["reason"],
)
BUS_RECONNECTS = Counter("parley_bus_reconnects", "Times a process's bus got Redis back after losing it.")
HUB_GROUPS = Gauge(
    "parley_hub_groups", "Groups (rooms, users) processes are subscribed to.", multiprocess_mode="livesum"
)

# -- presence and typing --------------------------------------------------------------------------

PRESENCE_TRANSITIONS = Counter("parley_presence_transitions", "Presence changes announced, by new status.", ["status"])
PRESENCE_UPDATE = Histogram(
    "parley_presence_update_seconds",
    "One presence update: a batch of beats or a connect/disconnect applied in Redis, transitions announced.",
    buckets=LATENCY_BUCKETS,
)
TYPING = Counter(
    "parley_typing_relays", "typing frames: relayed to the room, or dropped (at most 1 per 2 s).", ["outcome"]
)

# -- HTTP -----------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "parley_http_requests",
    "HTTP requests by route pattern, method and status (SSE: when the stream starts).",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "parley_http_request_duration_seconds",
    "Time to the response (its headers, for a stream), by route pattern.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)

# -- PostgreSQL pool ------------------------------------------------------------------------------

DB_POOL_CONNECTIONS = Gauge(
    "parley_db_pool_connections",
    "Pooled PostgreSQL connections of the web processes, by state (in_use, idle); sampled every 5 s.",
    ["state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge("parley_db_pool_max", "The pools' maximum size, summed.", multiprocess_mode="livesum")
DB_POOL_WAITING = Gauge(
    "parley_db_pool_waiting", "Requests waiting for a pooled connection.", multiprocess_mode="livesum"
)
DB_POOL_ERRORS = Counter(
    "parley_db_pool_errors", "Requests that got no pooled connection (timed out waiting, or connecting failed)."
)

# -- Celery, archive, partitions ------------------------------------------------------------------

TASK_RUNS = Counter(
    "parley_celery_task_runs", "Celery task runs by task and outcome (success, failure, retry).", ["task", "outcome"]
)
TASK_DURATION = Histogram(
    "parley_celery_task_duration_seconds",
    "Celery task run time by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
ARCHIVE_DAYS = Counter("parley_archive_days", "Message days archive runs finished, by outcome.", ["outcome"])
ARCHIVE_ROWS = Counter("parley_archive_rows", "Messages written to the archive store.")
ARCHIVE_BYTES = Counter("parley_archive_bytes", "Compressed bytes written to the archive store.")
ARCHIVE_LAST_SUCCESS = Gauge(
    "parley_archive_last_success_timestamp_seconds",
    "Unix time of the last day archived successfully.",
    multiprocess_mode="max",
)
PARTITIONS_AHEAD = Gauge(
    "parley_message_partitions_ahead",
    "Consecutive days after today that have a message partition (as last checked: /readyz, /metrics, the hourly task).",
    multiprocess_mode="mostrecent",
)

# -- the per-process tally (see the module docstring) -------------------------------------------

FLUSH_SECONDS = 1.0


class Tally:
    """Counter increments kept in plain dicts, one per thread and cumulative (each dict has one
    writer: no lock, no lost update), and histogram observations waiting in a deque (appends are
    thread-safe). `flush` adds each series' growth since the previous flush to its counter, once
    per series, and makes the waiting observations; a daemon thread runs it every FLUSH_SECONDS
    once `start` ran (and again in a forked child)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one flush at a time; guards `tables`
        self._reset()
        self.thread: threading.Thread | None = None
        self.started = False

    def _reset(self) -> None:
        self.local = threading.local()
        self.tables: list[tuple[dict, dict]] = []  # (counts, flushed) of every thread that counted
        self.observations: deque[tuple[Histogram, float]] = deque()

    def _counts(self) -> dict:
        try:
            return self.local.counts
        except AttributeError:
            counts: dict = {}
            self.local.counts = counts
            with self.lock:
                self.tables.append((counts, {}))
            return counts

    def inc(self, child: Counter | Gauge, amount: float = 1) -> None:
        try:
            counts = self.local.counts
        except AttributeError:
            counts = self._counts()
        counts[child] = counts.get(child, 0) + amount

    def observe(self, histogram: Histogram, value: float) -> None:
        self.observations.append((histogram, value))

    def flush(self) -> None:
        """Write out everything tallied so far."""
        with self.lock:
            for counts, flushed in self.tables:
                # list() copies in one step under the GIL (the keys hash in C): safe against the
                # counting thread adding a series meanwhile.
                for child, total in list(counts.items()):
                    grown = total - flushed.get(child, 0)
                    if grown:
                        child.inc(grown)
                        flushed[child] = total
            pop = self.observations.popleft
            while True:
                try:
                    histogram, value = pop()
                except IndexError:
                    break
                histogram.observe(value)

    def start(self) -> None:
        """Flush every FLUSH_SECONDS from a daemon thread, and at exit."""
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                return
            self.thread = threading.Thread(target=self._run, name="parley-metrics-flush", daemon=True)
            self.thread.start()
            if not self.started:
                self.started = True
                atexit.register(self.flush)
                # A fork never happens mid-flush (the child would inherit held locks: ours, and
                # prometheus-client's, which a flush takes while it holds ours).
                os.register_at_fork(
                    before=lambda: self.lock.acquire(),
                    after_in_parent=lambda: self.lock.release(),
                    after_in_child=self._forked,
                )

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # never let a flush kill the thread; the figures just wait
                pass

    def _forked(self) -> None:
        """In a forked child (Celery's pool, scripts/serve.py's uvicorn workers): the parent's
        counts are the parent's to write; this process counts afresh, with a flushing thread of its
        own (threads do not survive a fork)."""
        self.lock = threading.Lock()
        self._reset()
        self.thread = None
        self.start()


tally = Tally()
if MULTIPROCESS:
    tally.start()

# -- bound children and helpers (the hot paths call these) ----------------------------------------

OPEN = {transport: CONNECTIONS_OPEN.labels(transport) for transport in TRANSPORTS}
OPENED = {transport: CONNECTIONS.labels(transport) for transport in TRANSPORTS}
SLOW = {transport: SLOW_CONSUMER_CLOSES.labels(transport) for transport in TRANSPORTS}
GAPS = {transport: GAP_FILLS.labels(transport) for transport in ("socket", "stream")}
_bus: list[Counter] = []  # this process's (published, received), bound at first use: see worker()
DROPPED = {reason: BUS_DROPPED.labels(reason) for reason in ("redis", "queue_full")}
RELAYED, TYPING_DROPPED = TYPING.labels("relayed"), TYPING.labels("dropped")

# Close codes worth a series of their own (docs/protocol.md); a client may close with any code.
_CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013, 4401, 4403, 4408, 4429})
_MAX_CHILDREN = 200  # per cached family: server-side label values are bounded; this is a backstop


class _Children:
    """Bound children of one labelled metric, made on first use and cached."""

    def __init__(self, metric: Counter | Gauge, fixed: tuple[str, ...] = ()) -> None:
        self.metric, self.fixed = metric, fixed
        self.children: dict[str, Counter | Gauge] = {}

    def __call__(self, value: str) -> Counter | Gauge:
        child = self.children.get(value)
        if child is None:
            if len(self.children) >= _MAX_CHILDREN:
                value = "other"
                child = self.children.get(value)
            if child is None:
                child = self.children[value] = self.metric.labels(value, *self.fixed)
        return child


_frames_in = _Children(FRAMES_RECEIVED)
_frames_out = _Children(FRAMES_SENT)
_deliveries = _Children(EVENT_DELIVERIES)
_socket_errors = _Children(ERRORS, ("socket",))
_http_errors = _Children(ERRORS, ("http",))
_disconnects: dict[tuple[str, str], Counter] = {}
_known_frames: frozenset[str] = frozenset()


def known_frame_types(types: Iterable[str]) -> None:
    """The client frame types the socket handles (the others count as "unknown")."""
    global _known_frames
    _known_frames = frozenset(types)


def frame_received(frame_type: str) -> None:
    tally.inc(_frames_in(frame_type if frame_type in _known_frames else "unknown"))


def frame_sent(text: str) -> None:
    """Count a frame by its type, read from the text (our frames start with {"type":"...")."""
    if text.startswith('{"type":"'):
        end = text.find('"', 9)
        tally.inc(_frames_out(text[9:end] if 9 < end <= 48 else "other"))
    else:
        tally.inc(_frames_out("other"))


def delivered(event_type: str, members: int) -> None:
    tally.inc(_deliveries(event_type), members)


def _bus_counters() -> list[Counter]:
    if not _bus:
        _bus[:] = [BUS_PUBLISHED.labels(worker()), BUS_RECEIVED.labels(worker())]
    return _bus


def published(events: int) -> None:
    tally.inc((_bus or _bus_counters())[0], events)


def received() -> None:
    tally.inc((_bus or _bus_counters())[1])


os.register_at_fork(after_in_child=_bus.clear)  # a fork is another process: named afresh


def socket_error(code: str) -> None:
    _socket_errors(code).inc()


def http_error(code: str) -> None:
    _http_errors(code).inc()


def opened(transport: str) -> None:
    OPENED[transport].inc()
    OPEN[transport].inc()


def closed(transport: str, code: int | str | None = None) -> None:
    """A connection of `transport` ended (socket: with its close code)."""
    OPEN[transport].dec()
    if transport != "socket":
        label = "stream"
    elif isinstance(code, int) and code in _CLOSE_CODES:
        label = str(code)
    else:
        label = "other"
    child = _disconnects.get((transport, label))
    if child is None:
        child = _disconnects[(transport, label)] = DISCONNECTS.labels(transport, label)
    child.inc()


def presence_transitions(statuses: Iterable[str]) -> None:
    for status in statuses:
        PRESENCE_TRANSITIONS.labels(status if status in ("online", "away", "offline") else "other").inc()


def delivery_latency(event: dict) -> None:
    """Observe a numbered change's commit-to-delivery time (core.events stamps `at` on publish)."""
    at = event.get("at")
    if at is not None and event.get("type") == "room.sequenced":
        tally.observe(DELIVERY_LATENCY, max(0.0, time.time() - at))


def archived(rows: int | None, size: int | None) -> None:
    """A message day was archived (messaging.archive)."""
    ARCHIVE_DAYS.labels("archived").inc()
    ARCHIVE_ROWS.inc(rows or 0)
    ARCHIVE_BYTES.inc(size or 0)
    ARCHIVE_LAST_SUCCESS.set(time.time())


# -- HTTP routes ----------------------------------------------------------------------------------

_routes: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    pair = _routes.get(key)
    if pair is None:
        if len(_routes) >= 2000:  # routes are patterns, methods and statuses few: a backstop
            key = ("other", "other", 0)
            route, method, status = key
        pair = _routes.get(key)
        if pair is None:
            pair = _routes[key] = (HTTP_REQUESTS.labels(route, method, str(status)), HTTP_DURATION.labels(route))
    pair[0].inc()
    pair[1].observe(seconds)


# -- the PostgreSQL pool, sampled by a thread in each web process ---------------------------------

POOL_SAMPLE_SECONDS = 5.0
_sampler: threading.Thread | None = None
_sampler_lock = threading.Lock()


def sample_pool() -> None:
    """Copy the default database pool's figures into the gauges (no pool yet: zeros)."""
    from django.db import connections

    pools = getattr(type(connections["default"]), "_connection_pools", {})
    pool = pools.get("default")
    if pool is None:
        return
    stats = pool.get_stats()
    size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
    DB_POOL_CONNECTIONS.labels("in_use").set(max(0, size - available))
    DB_POOL_CONNECTIONS.labels("idle").set(available)
    DB_POOL_MAX.set(stats.get("pool_max", 0))
    DB_POOL_WAITING.set(stats.get("requests_waiting", 0))
    errors = stats.get("requests_errors", 0)
    global _pool_errors_seen
    if errors > _pool_errors_seen:
        DB_POOL_ERRORS.inc(errors - _pool_errors_seen)
    _pool_errors_seen = errors


_pool_errors_seen = 0


def start_pool_sampler() -> None:
    """Sample the pool every POOL_SAMPLE_SECONDS in a daemon thread (once per process; only in
    multiprocess mode, where another process may answer the scrape)."""
    global _sampler
    if not MULTIPROCESS:
        return
    with _sampler_lock:
        if _sampler is not None and _sampler.is_alive():
            return

        def run() -> None:
            while True:
                try:
                    sample_pool()
                except Exception:  # never let sampling kill the thread; the gauges just age
                    pass
                time.sleep(POOL_SAMPLE_SECONDS)

        if _sampler is None:  # the first start in this process's line: a forked child samples too
            os.register_at_fork(after_in_child=start_pool_sampler)
        _sampler = threading.Thread(target=run, name="parley-metrics-pool", daemon=True)
        _sampler.start()


# -- Celery ---------------------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def connect_celery() -> None:
    """Count every task run and its duration (Celery's signals; config/celery_app.py)."""
    from celery import signals

    def prerun(task_id=None, **_kwargs) -> None:
        if task_id:
            _task_started[task_id] = time.monotonic()

    def postrun(task_id=None, task=None, state=None, **_kwargs) -> None:
        started = _task_started.pop(task_id, None) if task_id else None
        name = getattr(task, "name", None) or "unknown"
        outcome = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}.get(str(state), "other")
        TASK_RUNS.labels(name, outcome).inc()
        if started is not None:
            TASK_DURATION.labels(name).observe(time.monotonic() - started)

    def process_shutdown(pid=None, **_kwargs) -> None:
        tally.flush()  # a pool process ends with os._exit: no atexit
        mark_process_dead(pid or os.getpid())

    signals.task_prerun.connect(prerun, weak=False, dispatch_uid="core.metrics.prerun")
    signals.task_postrun.connect(postrun, weak=False, dispatch_uid="core.metrics.postrun")
    signals.worker_process_shutdown.connect(process_shutdown, weak=False, dispatch_uid="core.metrics.shutdown")


def mark_process_dead(pid: int) -> None:
    """A process is gone: its live gauges (open connections, pool) no longer count."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _DIR)


# -- exposition -----------------------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric: summed over all processes in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    tally.flush()  # this process's figures are current; the others' at most FLUSH_SECONDS old
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=_DIR)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(_PROCESS_REGISTRY), CONTENT_TYPE_LATEST
