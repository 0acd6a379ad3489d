"""One asyncio Redis client per event loop (a server process has one loop; tests have one each)."""

import redis.asyncio as aioredis
from django.conf import settings

from core.loops import per_loop

client = per_loop(lambda: aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True))
