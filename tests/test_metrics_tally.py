"""core.metrics' tally: per-frame and per-event counts kept in the process and written out in one
go (docs/metrics.md). Nothing may be lost or written twice, whichever thread counts and whenever a
flush runs; a forked child (Celery's pool) does not write its parent's counts again."""

import os
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

from core.metrics import Tally


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_counts_from_many_threads_are_written_exactly_once_while_flushes_run():
    registry = CollectorRegistry()
    frames = Counter("t_frames", "", ["type"], registry=registry)
    sent, received = frames.labels("sent"), frames.labels("received")
    tally = Tally()
    go = threading.Barrier(5)
    stop = threading.Event()

    def count() -> None:
        go.wait()
        for number in range(20_000):
            tally.inc(sent)
            tally.inc(received, 2)
            if number % 1000 == 0:
                tally.inc(frames.labels(f"late-{threading.get_ident()}"))  # a series appears meanwhile

    def flush_meanwhile() -> None:
        go.wait()
        while not stop.is_set():
            tally.flush()

    flusher = threading.Thread(target=flush_meanwhile)
    counters = [threading.Thread(target=count) for _ in range(4)]
    for thread in (flusher, *counters):
        thread.start()
    for thread in counters:
        thread.join()
    stop.set()
    flusher.join()
    tally.flush()
    tally.flush()  # a second flush writes nothing more

    assert value(registry, "t_frames_total", type="sent") == 80_000
    assert value(registry, "t_frames_total", type="received") == 160_000
    (family,) = [family for family in registry.collect() if family.name == "t_frames"]
    late = [s.value for s in family.samples if s.name == "t_frames_total" and s.labels["type"].startswith("late-")]
    assert len(late) == 4 and sum(late) == 4 * 20


def test_nothing_is_written_before_a_flush_and_observations_keep_their_values():
    registry = CollectorRegistry()
    counter = Counter("t_events", "", registry=registry)
    histogram = Histogram("t_latency", "", buckets=(0.01, 0.1, 1.0), registry=registry)
    tally = Tally()
    tally.inc(counter, 3)
    tally.observe(histogram, 0.005)
    tally.observe(histogram, 0.5)
    assert value(registry, "t_events_total") == 0
    assert value(registry, "t_latency_count") == 0
    tally.flush()
    assert value(registry, "t_events_total") == 3
    assert value(registry, "t_latency_count") == 2
    assert value(registry, "t_latency_bucket", le="0.01") == 1
    assert value(registry, "t_latency_bucket", le="1.0") == 2
    assert value(registry, "t_latency_sum") == 0.505


def test_a_forked_child_writes_only_its_own_counts_and_flushes_by_itself():
    registry = CollectorRegistry()
    counter = Counter("t_forked", "", registry=registry)
    tally = Tally()
    tally.start()  # the flushing thread, and the fork hook
    tally.inc(counter, 5)  # the parent's, not yet written (its thread sleeps a second first)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's 5 are not its to write; its own 1 is, by its own thread
        try:
            tally.inc(counter)
            written = threading.Event()
            for _ in range(3000):  # its thread writes within FLUSH_SECONDS; give up after 30 s
                if value(registry, "t_forked_total") >= 1 or written.wait(0.01):
                    break
            os.write(write, str(value(registry, "t_forked_total")).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = float(pipe.read())
    os.waitpid(pid, 0)
    assert child == 1.0
    tally.flush()
    assert value(registry, "t_forked_total") == 5
