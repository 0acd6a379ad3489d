"""The Redis clients of a process, both answering `str`: one synchronous client (its connection
pool is shared by every thread) and one asyncio client per event loop (a server process has one
loop; tests have one each). Everything but the channel layer and Celery uses these.

Both give up after settings.REDIS_TIMEOUT, as the cache does: a request or a socket must not wait
forever on a Redis that hangs; it answers `unavailable` instead (core.errors.is_outage), and a
socket connecting meanwhile is closed with 1013 (messaging.consumers)."""

import functools

import redis
import redis.asyncio as aioredis
from django.conf import settings

from core.loops import per_loop


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        decode_responses=True,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
    )


aclient = per_loop(
    lambda: aioredis.Redis.from_url(
        settings.REDIS_URL,
        decode_responses=True,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
    )
)
