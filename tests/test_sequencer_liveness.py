"""A connection never stops delivering a room or a board because filling its holes was hard.

Found under overload (chat at 1,000 msg/s on a starved machine): reads of holes are slow, live
events fill the holes meanwhile, and every such read counted as an attempt that brought nothing.
After GAP_MAX_ATTEMPTS of them the sequencer gave up on the key for good: every later event of
the room waited behind a hole nobody read, and the socket silently stopped receiving the room
(tens of thousands of deliveries lost in a 25 s run). The same happened when the read failed
because PostgreSQL was briefly unavailable. These tests drive core.sequencer with the harness of
tests/test_sequencer.py: waits and reads end when the test says so, nothing depends on timing."""

import pytest

from core.errors import Unavailable
from core.sequencer import GAP_MAX_ATTEMPTS
from tests.test_sequencer import Harness, offer

pytestmark = pytest.mark.asyncio


async def test_a_hole_whose_reads_bring_nothing_or_fail_is_read_again_until_it_fills(caplog):
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 2)
    tries = GAP_MAX_ATTEMPTS + 3
    for attempt in range(tries):
        await h.end_wait(attempt)
        await h.until(lambda attempt=attempt: len(h.fetches) > attempt)
        if attempt % 2:  # PostgreSQL unavailable for a moment
            h.fetches[attempt][3].set_exception(Unavailable())
        else:  # nothing there yet, as far as this read could see
            h.fetches[attempt][3].set_result(([], 0))
    await h.end_wait(tries)
    await h.answer_fetch(tries, ([(1, "d1")], 1))
    await h.settle()
    assert h.numbers() == [1, 2]
    assert caplog.text.count("could not fill a gap in room r after 0 yet") == 1  # said once


async def test_events_arriving_during_slow_failing_reads_never_wear_the_key_out():
    """The overload case: while a hole is read (slowly, and the read fails), more events arrive
    behind it. They must not start reads of their own that each count as a failed attempt."""
    h = Harness()
    h.sequencer.follow("r", 0)
    await offer(h, 2)  # the event numbered 1 was lost: only the database has it
    await h.end_wait(0)
    await h.until(lambda: len(h.fetches) == 1)
    last = 2 + GAP_MAX_ATTEMPTS + 2
    for number in range(3, last + 1):
        await offer(h, number)
    for attempt in range(GAP_MAX_ATTEMPTS + 2):
        if attempt:
            await h.end_wait(attempt)
        await h.until(lambda attempt=attempt: len(h.fetches) > attempt)
        h.fetches[attempt][3].set_exception(Unavailable())  # PostgreSQL away for a while
    await h.end_wait(GAP_MAX_ATTEMPTS + 2)
    await h.answer_fetch(GAP_MAX_ATTEMPTS + 2, ([(1, "d1")], 1))
    await h.settle()
    assert h.numbers() == list(range(1, last + 1))
