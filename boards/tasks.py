import logging

from celery import shared_task

from boards.compaction import compact_board as compact_one
from boards.compaction import compact_due

logger = logging.getLogger(__name__)


@shared_task
def compact_boards() -> int:
    """Fold the log of every board that grew BOARD_COMPACT_AFTER updates past its latest
    snapshot (boards.compaction). Returns how many boards were compacted."""
    done = compact_due()
    if done:
        logger.info("compacted %d boards (%d updates folded)", len(done), sum(c.updates_folded for c in done))
    return len(done)


@shared_task
def prune_boards() -> int:
    """Compact every board due, and prune the old updates of every board whose log still holds
    updates a snapshot covers (they age past BOARD_KEEP_UPDATES_DAYS without new writes)."""
    done = compact_due(prunable=True)
    pruned = sum(c.updates_pruned for c in done)
    if pruned:
        logger.info("pruned %d board updates on %d boards", pruned, len(done))
    return len(done)


@shared_task
def compact_board(board_id: str) -> int:
    """Compact one board now (e.g. enqueued by the write that crossed BOARD_COMPACT_AFTER).
    Returns the number of the snapshot written, or 0."""
    result = compact_one(board_id)
    return result.sequence if result is not None else 0
