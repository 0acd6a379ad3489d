"""Token buckets: how often a client may do something, with bursts. Pure Python, no Django.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; an action takes one.
An empty bucket says how long until the next token, which clients get as `retry_after_ms`.

The socket keeps its buckets in memory (messaging.consumers): one set per socket, and one per
user per server process, so a user's sockets on one process share a budget. A check costs a few
float operations and no round trip, which is why it can sit in front of every frame.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """ "5,20": 5 a second, bursts of 20."""
        per_second, burst = (float(part) for part in text.split(","))
        if per_second <= 0 or burst < 1:
            raise ValueError(f"a rate needs a positive rate and a burst of at least 1, got {text!r}")
        return cls(per_second, burst)


@dataclass
class TokenBucket:
    rate: Rate
    tokens: float = -1.0  # full on first use
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.rate.burst, now
        self.tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.per_second)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate.per_second

    def give_back(self) -> None:
        self.tokens = min(self.rate.burst, self.tokens + 1)


@dataclass
class Buckets:
    """One bucket per kind of action, made on first use from `rates`."""

    rates: Mapping[str, Rate]
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, kind: str, now: float) -> float:
        rate = self.rates.get(kind)
        if rate is None:
            return 0.0
        bucket = self.buckets.get(kind)
        if bucket is None:
            bucket = self.buckets[kind] = TokenBucket(rate)
        return bucket.take(now)

    def give_back(self, kind: str) -> None:
        if kind in self.buckets:
            self.buckets[kind].give_back()


def take_all(now: float, kind: str, *levels: Buckets) -> float:
    """Take a `kind` token from every level (e.g. the socket's and the user's), or from none:
    0.0, or the longest wait among the levels that refused."""
    taken: list[Buckets] = []
    for level in levels:
        wait = level.take(kind, now)
        if wait:
            for done in taken:
                done.give_back(kind)
            return wait
        taken.append(level)
    return 0.0


@dataclass
class Strikes:
    """Counts refusals in a sliding window: a client that keeps going past its limits is told to
    go away (closing its socket) rather than answered forever."""

    limit: int
    window: float
    clock: Callable[[], float]
    times: list[float] = field(default_factory=list)

    def strike(self) -> bool:
        """Record a refusal; True once there were more than `limit` within `window` seconds."""
        now = self.clock()
        self.times = [t for t in self.times if now - t < self.window]
        self.times.append(now)
        return len(self.times) > self.limit
