"""One asyncio Redis client per event loop (a server process has one loop; tests have one each)."""

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = weakref.WeakKeyDictionary()


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    redis = _clients.get(loop)
    if redis is None:
        redis = _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return redis
