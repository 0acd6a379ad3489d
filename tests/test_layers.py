"""core.layers: a batch of group sends, pipelined per shard, against a real Redis."""

import asyncio
import uuid

import pytest
import redis
from django.conf import settings

from core.layers import PubSubChannelLayer


@pytest.mark.asyncio
async def test_a_batch_reaches_every_group_in_order_across_shards():
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    layer = PubSubChannelLayer(hosts=[f"{base}/0", f"{base}/1"])  # two shards
    inner = layer._get_layer()
    shard_of = {shard: [] for shard in inner._shards}
    for n in range(1000):  # four groups on each shard
        group = f"room.{uuid.UUID(int=n)}"
        shard_of[inner._get_shard(inner._get_group_channel_name(group))].append(group)
    groups = [group for on_shard in shard_of.values() for group in on_shard[:4]]
    assert len(groups) == 8
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    try:
        sends = [(group, {"type": "t", "group": group, "n": n}) for n in range(5) for group in groups]
        await layer.group_send_many(sends)
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in sends]
        for group in groups:  # each group's events arrive in the order they were sent
            assert [m["n"] for m in received if m["group"] == group] == list(range(5))
        assert sorted((m["group"], m["n"]) for m in received) == sorted((g, m["n"]) for g, m in sends)
    finally:
        await layer.flush()


@pytest.mark.asyncio
async def test_an_empty_batch_sends_nothing():
    store = redis.Redis.from_url(settings.REDIS_URL)

    def publishes() -> int:  # PUBLISH commands Redis has run
        return store.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)

    layer = PubSubChannelLayer(hosts=[settings.REDIS_URL])
    before = publishes()
    await layer.group_send_many([])
    assert publishes() == before
    await layer.group_send_many([("room.x", {"type": "t"})])  # and the count does see a send
    assert publishes() == before + 1
    await layer.flush()
