"""Queueing primitives, vectorised with numpy where the recursion allows it.

- `lindley`: one server, FIFO, unbounded queue: D_n = max(A_n, D_{n-1}) + S_n solved as a max-plus scan
  (D = C + cummax(A - C_prev), C the cumulative service), no Python loop.
- `FifoStation.serve`: c servers, FIFO, a bounded (or unbounded) waiting room. Stretches where no request waits
  are accepted in one vectorised step (a request n waits only if c requests are still in service at A_n, i.e.
  the number of earlier "no-wait" departures after A_n reaches c, counted with searchsorted); only the stretches
  where requests queue run the classic heap recursion (Kiefer–Wolfowitz) in Python.
- `LogHistogram`: fixed log-spaced bins for latency percentiles (2.9 % wide).
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

FloatArray = np.ndarray

LOOKAHEAD = 16384  # arrivals checked per vectorised attempt
MIN_SERVICE = 1e-9


def draw(rng: np.random.Generator, dist: str, mean: float, cv: float, n: int) -> FloatArray:
    """n service times (seconds) with the given mean and coefficient of variation."""
    if n == 0 or mean <= 0:
        return np.zeros(n)
    if dist == "constant" or (dist == "lognormal" and cv <= 0):
        return np.full(n, mean)
    if dist == "exponential":
        return rng.exponential(mean, n)
    sigma2 = np.log1p(cv * cv)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)


def lindley(arrivals: FloatArray, services: FloatArray, free_at: float) -> tuple[FloatArray, FloatArray]:
    """Departures and start times of one FIFO server that is busy until `free_at`."""
    c = np.cumsum(services)
    x = arrivals - (c - services)
    x[0] = max(arrivals[0], free_at)
    departures = c + np.maximum.accumulate(x)
    return departures, departures - services


class FifoStation:
    """c identical servers in front of one FIFO queue holding at most `limit` waiting requests (0: unbounded).

    State carried between batches: `free`, a heap of the time each server becomes free, and `waiting`, the
    start times of requests still queued (FIFO start times never decrease, so it stays sorted).
    """

    def __init__(self, servers: int, limit: int, now: float = 0.0):
        self.free: list[float] = [now] * servers
        self.limit = limit
        self.waiting: deque[float] = deque()

    @property
    def servers(self) -> int:
        return len(self.free)

    def resize(self, servers: int, now: float) -> None:
        """Add servers (free from `now`) or remove the ones that free up first (their work still completes)."""
        n = len(self.free)
        if servers > n:
            self.free.extend([now] * (servers - n))
            heapq.heapify(self.free)
        elif servers < n:
            self.free = sorted(self.free)[n - servers :]
            heapq.heapify(self.free)

    def serve(self, arrivals: FloatArray, services: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(departures, starts) for sorted arrivals; a refused request gets NaN for both."""
        n = len(arrivals)
        dep = np.empty(n)
        start = np.empty(n)
        c = len(self.free)
        if c == 0:
            dep.fill(np.nan)
            start.fill(np.nan)
            return dep, start
        if c == 1 and self.limit == 0:
            d, s = lindley(arrivals, services, self.free[0])
            self.free = [float(d[-1])]
            return d, s
        if c == 1:
            return self._serve_one(arrivals, services, dep, start)
        i = 0
        chunk = 16  # requests for the heap recursion when a vectorised attempt stops early
        block = 256  # arrivals per vectorised attempt: doubles while whole blocks pass, shrinks when they do not
        waiting = self.waiting
        while i < n:
            if not waiting or waiting[-1] <= arrivals[i]:
                waiting.clear()
                j = min(n, i + block)
                a = arrivals[i:j]
                d0 = a + services[i:j]
                free_sorted = np.sort(np.asarray(self.free))
                busy = c - np.searchsorted(free_sorted, a, side="right")
                busy += np.arange(len(a)) - np.searchsorted(np.sort(d0), a, side="right")
                bad = np.flatnonzero(busy >= c)
                k = int(bad[0]) if len(bad) else len(a)
                if k:
                    dep[i : i + k] = d0[:k]
                    start[i : i + k] = a[:k]
                    both = np.concatenate((free_sorted, d0[:k]))
                    self.free = np.partition(both, len(both) - c)[len(both) - c :].tolist()
                    heapq.heapify(self.free)
                    i += k
                    if i >= n:
                        break
                if k == len(a):
                    block = min(block * 2, LOOKAHEAD)
                    continue
                block = max(64, 2 * k)
                if k >= 64:
                    chunk = 16
                    continue
            # Queueing: the heap recursion for a while, longer each time it is needed back to back.
            m = min(n, i + chunk)
            end = self._loop(arrivals, services, dep, start, i, m)
            chunk = min(chunk * 2, 4096) if end == m else 16
            i = end
        return dep, start

    def _serve_one(
        self, arrivals: FloatArray, services: FloatArray, dep: FloatArray, start: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """One server with a bounded waiting room: the Lindley scan, accepted up to the first arrival that finds
        the room full (the queue length an arrival sees is the number of earlier starts after it: starts never
        decrease, so searchsorted counts them); the heap recursion takes that stretch, then the scan resumes."""
        n = len(arrivals)
        limit = self.limit
        i = 0
        block = 256
        while i < n:
            j = min(n, i + block)
            a = arrivals[i:j]
            d, s = lindley(a, services[i:j], self.free[0])
            carried = np.asarray(self.waiting, dtype=np.float64)
            queued = len(carried) - np.searchsorted(carried, a, side="right")
            queued += np.maximum(np.arange(len(a)) - np.searchsorted(s, a, side="right"), 0)
            bad = np.flatnonzero(queued >= limit)
            k = int(bad[0]) if len(bad) else len(a)
            if k:
                dep[i : i + k] = d[:k]
                start[i : i + k] = s[:k]
                self.free = [float(d[k - 1])]
                both = np.concatenate((carried, s[:k]))
                self.waiting = deque(both[both > a[k - 1]].tolist())
                i += k
            if k == len(a):
                block = min(2 * block, LOOKAHEAD)
                continue
            block = max(64, 2 * k)
            i = self._loop(arrivals, services, dep, start, i, min(n, i + 64))
        return dep, start

    def _loop(
        self, arrivals: FloatArray, services: FloatArray, dep: FloatArray, start: FloatArray, i: int, m: int
    ) -> int:
        """The heap recursion over arrivals i..m; it returns early (the index reached) once 24 requests in a row
        found a free server, so that the vectorised path can take over again."""
        if not self.limit:
            return self._loop_unbounded(arrivals, services, dep, start, i, m)
        free = self.free
        waiting = self.waiting
        limit = self.limit
        replace = heapq.heapreplace
        popleft = waiting.popleft
        push_wait = waiting.append
        nan = float("nan")
        out_d: list[float] = []
        out_s: list[float] = []
        calm = 0
        for a, s in zip(arrivals[i:m].tolist(), services[i:m].tolist(), strict=True):
            while waiting and waiting[0] <= a:
                popleft()
            if limit and len(waiting) >= limit:
                out_d.append(nan)
                out_s.append(nan)
                calm = 0
                continue
            f = free[0]
            if f > a:
                push_wait(f)
                st = f
                calm = 0
            else:
                st = a
                calm += 1
            d = st + s
            replace(free, d)
            out_d.append(d)
            out_s.append(st)
            if calm >= 24 and not waiting:
                break
        end = i + len(out_d)
        dep[i:end] = out_d
        start[i:end] = out_s
        return end

    def _loop_unbounded(
        self, arrivals: FloatArray, services: FloatArray, dep: FloatArray, start: FloatArray, i: int, m: int
    ) -> int:
        """`_loop` without a waiting-room limit: no queue to track, starts derived from the departures."""
        free = self.free
        replace = heapq.heapreplace
        out_d: list[float] = []
        push = out_d.append
        calm = 0
        for a, s in zip(arrivals[i:m].tolist(), services[i:m].tolist(), strict=True):
            f = free[0]
            if f > a:
                d = f + s
                calm = 0
            else:
                d = a + s
                calm += 1
            replace(free, d)
            push(d)
            if calm >= 24:
                break
        end = i + len(out_d)
        dep[i:end] = out_d
        start[i:end] = dep[i:end] - services[i:end]
        return end


class LogHistogram:
    """Counts of values (seconds) in log-spaced bins from 1 µs to ~28 h, 80 per decade."""

    PER_DECADE = 80
    LO = -6.0
    BINS = 80 * 11

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, dtype=np.int64)

    @classmethod
    def index(cls, values: FloatArray) -> np.ndarray:
        idx = (np.log10(np.maximum(values, 1e-9)) * cls.PER_DECADE).astype(np.int64)
        idx += 1 - int(cls.LO * cls.PER_DECADE)
        np.maximum(idx, 0, out=idx)
        np.minimum(idx, cls.BINS, out=idx)
        return idx

    def add(self, values: FloatArray) -> None:
        if len(values):
            idx = self.index(values)
            lo = int(idx.min())
            counts = np.bincount(idx - lo)
            self.counts[lo : lo + len(counts)] += counts

    @classmethod
    def edge(cls, i: int) -> float:
        """Lower edge of bin i (bin 0 holds everything below 1 µs)."""
        if i <= 0:
            return 0.0
        return float(10 ** (cls.LO + (i - 1) / cls.PER_DECADE))

    @classmethod
    def percentiles_of(cls, counts: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
        total = int(counts.sum())
        if total == 0:
            return [None for _ in qs]
        cum = np.cumsum(counts)
        out: list[float | None] = []
        for q in qs:
            rank = q / 100.0 * total
            i = int(np.searchsorted(cum, rank, side="left"))
            below = cum[i - 1] if i > 0 else 0
            frac = (rank - below) / max(counts[i], 1)
            lo, hi = cls.edge(i), cls.edge(i + 1)
            out.append(lo + (hi - lo) * float(frac) if lo > 0 else hi * float(frac))
        return out

    def percentiles(self, qs: tuple[float, ...]) -> list[float | None]:
        return self.percentiles_of(self.counts, qs)
