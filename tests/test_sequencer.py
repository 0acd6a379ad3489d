"""core.sequencer on its own (no database, no Redis): the one ordering of numbered events that the
socket's rooms and boards and the SSE / long-poll streams share. Waits end when the test says so,
and a fetch answers when the test says so: nothing here depends on how busy the machine is."""

import asyncio
from typing import Any

import pytest

from core.errors import NotFound
from core.sequencer import GAP_MAX_ATTEMPTS, Sequencer

pytestmark = pytest.mark.asyncio

TIMEOUT = 5  # a bound on waiting for something that must happen, never a measurement


class Harness:
    """A sequencer whose deliveries are recorded, whose gap waits and fetches the test ends."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, int, Any]] = []
        self.waits: list[asyncio.Future] = []
        self.tasks: list = []  # the gap tasks, as they started waiting
        self.fetches: list[tuple[str, int, int, asyncio.Future]] = []
        self.changed = asyncio.Event()
        self.sequencer = Sequencer(deliver=self.deliver, fetch=self.fetch, wait=self.wait)

    def deliver(self, key: str, number: int, item: Any) -> None:
        self.delivered.append((key, number, item))

    async def wait(self, attempt: int) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waits.append(future)
        self.tasks.append(asyncio.current_task())
        self.changed.set()
        await future

    async def fetch(self, key: str, after: int, upto: int) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.fetches.append((key, after, upto, future))
        self.changed.set()
        return await future

    async def until(self, condition) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def end_wait(self, index: int) -> None:
        await self.until(lambda: len(self.waits) > index)
        self.waits[index].set_result(None)

    async def answer_fetch(self, index: int, result: Any) -> tuple[str, int, int]:
        await self.until(lambda: len(self.fetches) > index)
        key, after, upto, future = self.fetches[index]
        future.set_result(result)
        return key, after, upto

    async def settle(self) -> None:
        """Until every gap task is done, ending their waits (call it with every fetch answered)."""
        while True:
            for future in self.waits:
                if not future.done():
                    future.set_result(None)
            running = [task for task in self.tasks if not task.done()]
            if not running:
                return
            await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), TIMEOUT)

    def numbers(self) -> list[int]:
        return [number for _, number, item in self.delivered if item is not None]


async def offer(h: Harness, number: int, key: str = "r") -> None:
    cursor = h.sequencer.cursors[key]
    if h.sequencer.advance(cursor, number):
        h.deliver(key, number, f"e{number}")
    else:
        await h.sequencer.offer(key, cursor, number, f"e{number}")


async def test_events_come_out_in_number_order_whatever_order_they_arrive_in():
    h = Harness()
    h.sequencer.follow("r", 0)
    for number in (1, 3, 5, 4, 2):
        await offer(h, number)
    assert h.numbers() == [1, 2, 3, 4, 5]
    assert [item for _, _, item in h.delivered] == ["e1", "e2", "e3", "e4", "e5"]
    await h.end_wait(0)  # the hole at 2 had a wait; it filled in time: nothing is read
    await h.settle()
    assert h.fetches == [] and h.sequencer.cursors["r"].pending == {}


async def test_duplicates_and_stale_events_are_dropped_and_keys_are_independent():
    h = Harness()
    h.sequencer.follow("r", 10)
    h.sequencer.follow("s", 0)
    for key, number in (("r", 11), ("r", 11), ("s", 1), ("r", 9), ("r", 13), ("r", 13), ("r", 12), ("s", 1)):
        await offer(h, number, key)
    assert [(key, number) for key, number, _ in h.delivered] == [("r", 11), ("s", 1), ("r", 12), ("r", 13)]
    await h.end_wait(0)
    await h.settle()
    assert h.fetches == []


async def test_a_hole_that_does_not_fill_is_read_through_fetch_with_superseded_numbers_passed_over():
    h = Harness()
    h.sequencer.follow("r", 1)
    await offer(h, 5)  # 2, 3 and 4 are missing
    await h.end_wait(0)
    # The read: 2 and 4 are stored; 3 was superseded (a later change of the same message).
    assert await h.answer_fetch(0, ([(2, "d2"), (4, "d4")], 4)) == ("r", 1, 4)
    await h.settle()
    assert h.delivered == [("r", 2, "d2"), ("r", 4, "d4"), ("r", 5, "e5")]
    assert h.sequencer.cursors["r"].last == 5 and not h.sequencer.cursors["r"].pending


async def test_a_fetch_racing_live_events_delivers_each_number_once_in_order():
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 1)
    await offer(h, 4)
    await h.end_wait(0)
    await h.until(lambda: len(h.fetches) == 1)  # reading 2..3 from the database...
    await offer(h, 2)  # ...while the live events arrive after all
    await offer(h, 3)
    assert h.numbers() == [1, 2, 3, 4]
    await h.answer_fetch(0, ([(2, "d2"), (3, "d3")], 3))  # what it read is delivered already
    await offer(h, 5)
    await h.settle()
    assert h.numbers() == [1, 2, 3, 4, 5] and h.delivered[1][2] == "e2" and len(h.fetches) == 1
    # A read that ends past the live events moves the cursor over the superseded numbers once.
    await offer(h, 8)
    await h.end_wait(1)  # one read at a time per key: the hole the live events filled had no second wait
    await h.until(lambda: len(h.fetches) == 2)
    await offer(h, 6)
    await h.answer_fetch(1, ([(6, "d6")], 7))
    await h.settle()
    assert h.delivered[-3:] == [("r", 6, "e6"), ("r", 7, None), ("r", 8, "e8")]
    assert [number for _, number, _ in h.delivered] == list(range(1, 9))


async def test_a_long_hole_is_read_page_by_page():
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 301)
    await h.end_wait(0)
    assert await h.answer_fetch(0, ([(n, f"d{n}") for n in range(1, 101)], 100)) == ("r", 0, 300)
    assert await h.answer_fetch(1, ([(n, f"d{n}") for n in range(101, 201)], 200)) == ("r", 100, 300)
    assert await h.answer_fetch(2, ([(n, f"d{n}") for n in range(201, 301)], 300)) == ("r", 200, 300)
    await h.settle()
    assert h.numbers() == list(range(1, 302))


async def test_a_read_that_brings_nothing_is_retried_and_said_after_a_few_attempts(caplog):
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 2)
    for attempt in range(GAP_MAX_ATTEMPTS):
        await h.end_wait(attempt)
        await h.answer_fetch(attempt, ([], 0))  # the database has nothing new (yet)
    await h.until(lambda: len(h.waits) == GAP_MAX_ATTEMPTS + 1)  # never given up (test_sequencer_liveness)
    assert "could not fill a gap in room r after 0 yet" in caplog.text
    await offer(h, 1)  # a live event moves it on
    assert h.numbers() == [1, 2]
    await h.settle()


async def test_a_key_forgotten_during_its_wait_or_refused_by_fetch_is_left_alone():
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 2)
    await h.until(lambda: len(h.waits) == 1)
    task = h.sequencer.cursors["r"].gap_task
    h.sequencer.forget("r")  # e.g. the user left the room
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)
    assert h.fetches == [] and h.delivered == []
    h.sequencer.follow("s", 0)
    await offer(h, 2, "s")
    await h.end_wait(1)
    await h.until(lambda: len(h.fetches) == 1)
    h.fetches[0][3].set_exception(NotFound())  # no longer a member: the removal is on its way
    await h.settle()
    assert h.delivered == [] and h.sequencer.cursors["s"].gap_task is None


async def test_a_suspended_key_holds_everything_until_restarted_and_skips_none_items():
    """A board being joined: live updates wait until its state is written at some number; the
    ones it covers are dropped; a None item (the socket's own update) moves on without output."""
    h = Harness()
    cursor = h.sequencer.follow("b", None)
    for number in (3, 2, 5):
        await h.sequencer.offer("b", cursor, number, f"e{number}")
    await h.sequencer.offer("b", cursor, 4, None)
    assert h.delivered == [] and h.waits == []
    assert not h.sequencer.advance(cursor, 1)
    h.sequencer.restart(cursor, 2)  # the state included everything up to 2
    await h.sequencer.drain("b", cursor)
    assert h.delivered == [("b", 3, "e3"), ("b", 4, None), ("b", 5, "e5")]
    h.sequencer.restart(cursor, 1)  # never moves back
    assert cursor.last == 5
    h.sequencer.suspend(cursor)  # joined again
    for number in (7, 6):
        await h.sequencer.offer("b", cursor, number, f"e{number}")
    h.sequencer.restart(cursor, 6)
    await h.sequencer.drain("b", cursor)
    assert h.delivered[-1] == ("b", 7, "e7") and len(h.delivered) == 4


async def test_catch_up_serves_a_shared_read_to_a_cursor_that_is_behind_and_to_one_that_is_not():
    h = Harness()
    h.sequencer.follow("r", 0)
    h.sequencer.follow("s", 3)
    items = [(1, "d1"), (3, "d3")]  # 2 superseded
    await h.sequencer.catch_up("r", items, 3)
    await h.sequencer.catch_up("s", items, 3)
    assert h.delivered == [("r", 1, "d1"), ("r", 3, "d3")]
    assert h.sequencer.cursors["r"].last == 3
