"""The channel layer: channels-redis' pub/sub layer, plus a batch send.

A batch of sends (core.events.publish) announces several room events at once. The stock layer
sends each with its own PUBLISH, awaited one after another while holding the shard's lock: a
round trip per event. `group_send_many` sends them in one pipeline per shard: one write, one
read of the replies, the same messages in the same order (docs/performance.md).

It reaches into the layer's per-loop internals (`_get_layer`, `_get_shard`, the shard's `_lock`
and `_redis`) as channels-redis 4.3 has them; requirements.txt pins that version and
tests/test_layers.py checks the batch against a real Redis.
"""

from channels_redis.pubsub import RedisPubSubChannelLayer


class PubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, sends: list[tuple[str, dict]]) -> None:
        """`group_send` for each (group, message), in order, one pipeline per shard."""
        layer = self._get_layer()
        by_shard: dict = {}
        for group, message in sends:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, self.serialize(message)))
        for shard, messages in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for channel, data in messages:
                    pipe.publish(channel, data)
                await pipe.execute()
