"""messaging.consumers.SharedReads: the connections of a room in one process that miss the same
changes wait for one database read (the first one's), and one refused read does not refuse the
others."""

import asyncio

import pytest

from core.errors import NotFound
from messaging import consumers

pytestmark = pytest.mark.asyncio


@pytest.fixture
def reads(monkeypatch):
    """A fake database read that waits until released, recording who asked."""
    asked: list[tuple[object, str, int, int]] = []
    release = asyncio.Event()
    refuse: set[object] = set()

    async def read_changes(user, room_id, after, upto):
        asked.append((user, room_id, after, upto))
        await release.wait()
        if user in refuse:
            raise NotFound("No such room.")
        return [(number, f"frame {number}") for number in range(after + 1, upto + 1)], upto

    monkeypatch.setattr(consumers, "_read_changes", read_changes)
    return asked, release, refuse


async def test_connections_missing_the_same_changes_share_one_read(reads):
    asked, release, _ = reads
    shared = consumers.SharedReads()
    pages = [asyncio.ensure_future(shared.read(user, "room-1", 4, 6)) for user in ("ada", "bob", "eve")]
    other = asyncio.ensure_future(shared.read("ada", "room-2", 4, 6))  # another room: its own read
    await asyncio.sleep(0)  # every read has asked (none can finish before the release)
    release.set()
    results = await asyncio.gather(*pages, other)
    assert asked == [("ada", "room-1", 4, 6), ("ada", "room-2", 4, 6)]
    assert results[0] == results[1] == results[2] == ([(5, "frame 5"), (6, "frame 6")], 6)
    assert shared.reads == {}  # done reads are forgotten: the next hole is read anew
    await shared.read("bob", "room-1", 4, 6)
    assert len(asked) == 3


async def test_a_refused_first_read_refuses_only_its_own_connection(reads):
    asked, release, refuse = reads
    refuse.add("gone")
    shared = consumers.SharedReads()
    first = asyncio.ensure_future(shared.read("gone", "room-1", 0, 2))
    second = asyncio.ensure_future(shared.read("bob", "room-1", 0, 2))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(NotFound):
        await first
    assert await second == ([(1, "frame 1"), (2, "frame 2")], 2)
    assert [user for user, *_ in asked] == ["gone", "bob"]


async def test_a_cancelled_connection_does_not_cancel_the_read_others_wait_for(reads):
    asked, release, _ = reads
    shared = consumers.SharedReads()
    first = asyncio.ensure_future(shared.read("ada", "room-1", 0, 1))
    second = asyncio.ensure_future(shared.read("bob", "room-1", 0, 1))
    await asyncio.sleep(0)
    first.cancel()  # Ada's socket closed while its read was in flight
    release.set()
    assert await second == ([(1, "frame 1")], 1)
    assert len(asked) == 1
