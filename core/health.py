"""`/healthz`, `/readyz` and `/metrics`, answered before Django (config/asgi.py).

They are for load balancers, orchestrators and Prometheus, which reach a process by its address:
no host check (ALLOWED_HOSTS), no HTTPS redirect, no session or CSRF, nothing that a missing
dependency could break on the way. docs/metrics.md describes the answers.

- /healthz: the process serves (touches nothing).
- /readyz: PostgreSQL, Redis (REDIS_URL and every channel shard), the archive store and today's
  and tomorrow's message partitions, checked in parallel, each within HEALTH_CHECK_SECONDS (1 s by
  default; a probe's own timeout should be longer). The answer
  names the failed checks and nothing else: no host names, no error text (logged server-side,
  by error class only).
- /metrics: the Prometheus exposition, summed over the processes sharing PROMETHEUS_MULTIPROC_DIR
  (core.metrics), for `Authorization: Bearer <METRICS_TOKEN>` only; otherwise, or when
  METRICS_TOKEN is not set, the API's 404.
"""

import asyncio
import datetime as dt
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis
from django.conf import settings

from core import metrics

logger = logging.getLogger(__name__)

PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PARTITION_PARENT = "messaging_message"
NAME_FORMAT = "%Y%m%d"  # messaging.partitions.NAME_FORMAT

_NOT_FOUND = json.dumps({"error": {"code": "not_found", "message": "Not found."}}).encode()

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [
        (b"content-type", content_type),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve(scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], send: Send) -> None:
    """Answer one of PATHS (only GET and HEAD; the body of a request is not read)."""
    path = scope["path"]
    if scope.get("method") not in ("GET", "HEAD"):
        await _respond(send, 404 if path == "/metrics" else 405, _NOT_FOUND if path == "/metrics" else b"{}")
        return
    if path == "/healthz":
        # Which worker answered (scripts/serve.py's web-0, web-1, ...: the name of its slot, as in
        # the metrics' `worker` label): a rolling restart waits until the restarted one answers.
        await _respond(send, 200, json.dumps({"status": "ok", "worker": metrics.worker()}).encode())
    elif path == "/readyz":
        ready, checks = await readiness()
        body = json.dumps({"status": "ok" if ready else "unavailable", "checks": checks}).encode()
        await _respond(send, 200 if ready else 503, body)
    elif not _authorized(scope):
        await _respond(send, 404, _NOT_FOUND)
    else:
        try:
            await _partitions_gauge()
        except Exception as error:  # the gauge keeps its last value; the scrape goes on
            logger.warning("metrics: the partitions could not be counted (%s)", type(error).__name__)
        body, content_type = await asyncio.to_thread(metrics.exposition)
        await _respond(send, 200, body, content_type.encode())


def _authorized(scope: dict[str, Any]) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return False
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return hmac.compare_digest(value, b"Bearer " + token.encode())
    return False


# -- the checks -----------------------------------------------------------------------------------


def _bound() -> float:
    return float(settings.HEALTH_CHECK_SECONDS)


def partition_name(day: dt.date) -> str:
    return f"{PARTITION_PARENT}_{day.strftime(NAME_FORMAT)}"


PARTITIONS_SQL = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = %s::regclass AND c.relname >= %s"
)


async def _partition_names() -> set[str]:
    """The message partitions from today on, read over a fresh connection (a broken pool or a full
    server shows here as it would to a new worker)."""
    from core.asyncdb import connection_params

    params = connection_params()
    params["connect_timeout"] = max(2, int(_bound() + 0.999))  # libpq's minimum; asyncio bounds it anyway
    async with await psycopg.AsyncConnection.connect(autocommit=True, **params) as connection:
        cursor = await connection.execute(PARTITIONS_SQL, [PARTITION_PARENT, partition_name(today())])
        return {row[0] for row in await cursor.fetchall()}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def days_ahead(names: set[str]) -> int:
    """Consecutive days after today with a partition."""
    first, ahead = today(), 0
    while partition_name(first + dt.timedelta(days=ahead + 1)) in names:
        ahead += 1
    return ahead


async def _partitions_gauge() -> None:
    async with asyncio.timeout(_bound()):
        names = await _partition_names()
    metrics.PARTITIONS_AHEAD.set(days_ahead(names))


async def _check_postgres() -> set[str]:
    return await _partition_names()


async def _check_redis() -> None:
    urls = list(dict.fromkeys([settings.REDIS_URL, *settings.REDIS_CHANNEL_URLS]))

    async def ping(url: str) -> None:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=_bound(), socket_timeout=_bound())
        try:
            await client.ping()
        finally:
            await client.aclose()

    await asyncio.gather(*(ping(url) for url in urls))


def _check_archive() -> None:
    from messaging.archive_storage import S3Storage, archive_storage

    storage = archive_storage()
    if isinstance(storage, S3Storage):
        storage.reader.head_bucket(Bucket=storage.bucket)  # 1 s connect, 2 s read, one attempt
        return
    path = Path(settings.ARCHIVE_LOCAL_DIR)
    while not path.exists():  # archival creates it: its nearest existing parent must be writable
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError("the archive directory is not writable")


async def _bounded(name: str, check: Awaitable[Any]) -> tuple[str, Any]:
    """(outcome, result): "ok", "timeout" or "fail"; the error is logged by class, never answered."""
    try:
        async with asyncio.timeout(_bound()):
            return "ok", await check
    except TimeoutError:
        logger.warning("readiness: %s did not answer within %ss", name, _bound())
        return "timeout", None
    except Exception as error:
        logger.warning("readiness: %s failed (%s)", name, type(error).__name__)
        return "fail", None


async def readiness() -> tuple[bool, dict[str, str]]:
    """(ready, {check: "ok" | "fail" | "timeout" | "unknown"})."""
    (postgres, names), (redis, _), (archive, _) = await asyncio.gather(
        _bounded("postgres", _check_postgres()),
        _bounded("redis", _check_redis()),
        _bounded("archive", asyncio.to_thread(_check_archive)),
    )
    if names is None:
        partitions = "unknown"
    else:
        ahead = days_ahead(names)
        metrics.PARTITIONS_AHEAD.set(ahead)
        partitions = "ok" if partition_name(today()) in names and ahead >= 1 else "fail"
        if partitions != "ok":
            logger.warning("readiness: the message partition of today or tomorrow is missing")
    checks = {"postgres": postgres, "redis": redis, "archive": archive, "partitions": partitions}
    return all(outcome == "ok" for outcome in checks.values()), checks
