"""A board's log folded into snapshots, what is kept for replay, and a document loaded at a number.

Loading a board is "the latest snapshot + the updates after it" (`load_document`); without
compaction that is the whole log, so a Celery task (boards.tasks.compact_boards, every minute)
folds the log of every board that has grown BOARD_COMPACT_AFTER updates past its latest snapshot
into a new snapshot (`compact_board`).

What is kept, so that replay (`GET /boards/{id}/state/?at=N`, `/history/`) keeps working:

- **Snapshots.** The latest one, plus *checkpoints*: a compaction keeps a snapshot on its way (or
  keeps the previous latest one) once it is at least BOARD_CHECKPOINT_EVERY (1,000) updates past
  the previous checkpoint *and* the updates in between add up to at least as many bytes as that
  checkpoint. So checkpoints take at most as much room as the log plus one document (a 1 MB board
  moved 40 bytes at a time gets one every ~25,000 updates, a 5 KB board one every 1,000), and
  replaying from one applies at most about a document's worth of updates (or 1,000). A latest snapshot that is not a
  checkpoint is dropped when the next compaction supersedes it. Checkpoints stay with the board.
- **Raw updates.** Compaction never deletes an update it did not fold. Folded updates are deleted
  only up to a *prune point* P: the highest snapshot at most the board's last number minus
  BOARD_KEEP_UPDATES (1,000) whose number was reached more than BOARD_KEEP_UPDATES_DAYS (30) days
  ago. So the last 1,000 updates and those of the last 30 days stay (replay of them at update
  granularity, with who changed what); below P the board replays at its checkpoints.

`load_document(board, N)` is then the document at the highest number n ≤ N reachable as "a
snapshot plus the raw updates after it"; n = N everywhere above P.

Concurrency. A board's numbers commit in order (the board row lock: boards.services), so the
committed updates are always a prefix 1..L of the log. Compaction reads L and the updates up to it
and writes a snapshot at L: it contains exactly the updates ≤ L; updates written meanwhile have
numbers > L and are never touched. Two compactions of one board exclude each other (a transaction
advisory lock; the second skips). Every read here is one SQL statement (one MVCC snapshot), so a
reader never sees a snapshot from before a prune together with the log from after it.
"""

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from pycrdt import Doc

from boards import crdt
from boards.models import Board, BoardSnapshot, BoardUpdate

logger = logging.getLogger(__name__)

_UPDATES = BoardUpdate._meta.db_table
_SNAPSHOTS = BoardSnapshot._meta.db_table
_BOARDS = Board._meta.db_table
_LOCK_CLASS = 0x626F  # "bo": the advisory-lock namespace of board compaction
CHECKPOINT_BYTES_RATIO = 1.0  # see _is_checkpoint


@dataclass
class Loaded:
    """A board's document at `sequence` (the highest number whose update it contains)."""

    doc: Doc
    sequence: int
    snapshot_sequence: int  # where the fold started (0: the empty document)
    updates_applied: int


def load_document(board_id: uuid.UUID | str, at: int | None = None) -> Loaded:
    """The board's document now (`at` None), or at number `at` for replay: the highest snapshot
    ≤ `at` plus the updates after it up to `at`. Below the prune point, where the raw updates are
    gone, the answer is the nearest earlier snapshot (`sequence` says which number it is at).

    No access check: callers check (boards.selectors)."""
    rows = _document_rows(board_id, at)
    doc: Doc = Doc()
    start = sequence = 0
    applied = 0
    for number, data, is_snapshot in rows:
        if is_snapshot:
            doc.apply_update(bytes(data))
            start = sequence = number
        elif number == sequence + 1:
            doc.apply_update(bytes(data))
            sequence = number
            applied += 1
        else:  # a hole: only below the prune point, where it ends the fold (see the module doc)
            break
    return Loaded(doc=doc, sequence=sequence, snapshot_sequence=start, updates_applied=applied)


def _document_rows(board_id: uuid.UUID | str, at: int | None) -> list[tuple[int, bytes, bool]]:
    # One statement: the snapshot and the log it continues are read from one MVCC snapshot.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH snap AS (
                SELECT sequence, state FROM {_SNAPSHOTS}
                 WHERE board_id = %(board)s AND (%(at)s::bigint IS NULL OR sequence <= %(at)s::bigint)
                 ORDER BY sequence DESC LIMIT 1
            )
            SELECT sequence, state, true FROM snap
            UNION ALL
            SELECT u.sequence, u.update, false FROM {_UPDATES} AS u
             WHERE u.board_id = %(board)s
               AND u.sequence > COALESCE((SELECT sequence FROM snap), 0)
               AND (%(at)s::bigint IS NULL OR u.sequence <= %(at)s::bigint)
             ORDER BY 3 DESC, 1
            """,
            {"board": str(board_id), "at": at},
        )
        return cursor.fetchall()


def log_start(board_id: uuid.UUID | str) -> int:
    """The prune point: every update numbered above it is in the log (those at or below it may
    be gone). A `board.sync` / `GET /updates/` after a number below it must answer with the whole
    state instead."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(
                (SELECT min(sequence) - 1 FROM {_UPDATES} WHERE board_id = %(board)s),
                (SELECT max(sequence) FROM {_SNAPSHOTS} WHERE board_id = %(board)s),
                0)
            """,
            {"board": str(board_id)},
        )
        return int(cursor.fetchone()[0])


def checkpoint_sequences(board_id: uuid.UUID | str) -> list[int]:
    """The numbers of the board's snapshots, ascending (replay's stops below the prune point)."""
    return list(BoardSnapshot.objects.filter(board_id=board_id).order_by("sequence").values_list("sequence", flat=True))


# --- Compaction -----------------------------------------------------------------------------------


@dataclass
class Compaction:
    board: str
    from_sequence: int  # the snapshot it started from (0: none)
    sequence: int  # the new latest snapshot
    updates_folded: int
    checkpoints: list[int]  # checkpoint snapshots written below `sequence`
    snapshot_bytes: int
    updates_pruned: int
    snapshots_dropped: int  # the previous latest snapshot, when it was not a checkpoint
    seconds: float


def compact_board(board_id: uuid.UUID | str, *, now: dt.datetime | None = None) -> Compaction | None:
    """Fold the board's log since its latest snapshot into a snapshot at its last committed
    number (with checkpoints on the way), then prune what replay no longer needs. None if there
    was nothing to fold and nothing to prune, or another compaction of this board is running."""
    started = time.perf_counter()
    board = str(board_id)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_CLASS, board])
            if not cursor.fetchone()[0]:
                logger.info("board %s: another compaction is running; skipped", board)
                return None
            cursor.execute(f"SELECT last_sequence FROM {_BOARDS} WHERE id = %s", [board])
            row = cursor.fetchone()
            if row is None:
                return None
            last = int(row[0])
            base = BoardSnapshot.objects.filter(board_id=board).order_by("-sequence").first()
        start = base.sequence if base is not None else 0
        written: list[tuple[int, bytes]] = []
        folded = 0
        dropped = 0
        if last > start:
            doc: Doc = Doc()
            # The checkpoint the fold measures from: the snapshot before `base` (every snapshot but
            # the latest is one), or `base` itself if it qualifies as one (or the log below it is
            # gone, so it must stay).
            anchor, anchor_bytes, raw = _anchor_before(board, start)
            keep_base = base is None or _is_checkpoint(start - anchor, raw, anchor_bytes) or log_start(board) > anchor
            if base is not None:
                doc.apply_update(bytes(base.state))
                if keep_base:
                    anchor, anchor_bytes, raw = start, len(bytes(base.state)), 0
            expected = start
            updates = (
                BoardUpdate.objects.filter(board_id=board, sequence__gt=start, sequence__lte=last)
                .order_by("sequence")
                .values_list("sequence", "update")
            )
            for number, update in updates.iterator(chunk_size=2000):
                if number != expected + 1:
                    raise RuntimeError(f"board {board}: update {expected + 1} is missing from the log")
                data = bytes(update)
                doc.apply_update(data)
                expected = number
                folded += 1
                raw += len(data)
                if number != last and _is_checkpoint(number - anchor, raw, anchor_bytes):
                    state = crdt.encode_state(doc)
                    written.append((number, state))
                    anchor, anchor_bytes, raw = number, len(state), 0
            if expected != last:
                raise RuntimeError(f"board {board}: the log ends at {expected}, not at {last}")
            written.append((last, crdt.encode_state(doc)))
            BoardSnapshot.objects.bulk_create(
                [BoardSnapshot(board_id=board, sequence=number, state=state) for number, state in written],
                ignore_conflicts=True,
            )
            if not keep_base:  # superseded, and not a checkpoint: the log around it is all there
                dropped, _ = BoardSnapshot.objects.filter(board_id=board, sequence=start).delete()
            _set_exact_size(board, last, len(written[-1][1]))
        updates_pruned = _prune(board, last, now or timezone.now())
    if not written and not updates_pruned:
        return None
    result = Compaction(
        board=board,
        from_sequence=start,
        sequence=written[-1][0] if written else start,
        updates_folded=folded,
        checkpoints=[number for number, _ in written[:-1]],
        snapshot_bytes=len(written[-1][1]) if written else 0,
        updates_pruned=updates_pruned,
        snapshots_dropped=dropped,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "board %s compacted: %d updates folded into #%d (%d bytes, %d checkpoints), %d updates pruned, %d "
        "snapshots dropped in %.2fs",
        board,
        result.updates_folded,
        result.sequence,
        result.snapshot_bytes,
        len(result.checkpoints),
        result.updates_pruned,
        result.snapshots_dropped,
        result.seconds,
    )
    return result


def _set_exact_size(board: str, last: int, snapshot_bytes: int) -> None:
    """Board.size is an upper bound that writers grow by each update's length (boards.services);
    the snapshot measured it exactly at `last`. Under the board's row lock (writers wait, briefly,
    until this commits), it becomes that plus the updates written since."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_BOARDS} WHERE id = %s FOR UPDATE", [board])
        cursor.execute(
            f"""
            UPDATE {_BOARDS} SET size = %(exact)s + COALESCE((
                SELECT sum(octet_length(update)) FROM {_UPDATES}
                 WHERE board_id = %(board)s AND sequence > %(last)s
            ), 0)
             WHERE id = %(board)s
            """,
            {"board": board, "last": last, "exact": snapshot_bytes},
        )


def _is_checkpoint(updates: int, raw_bytes: int, anchor_bytes: int) -> bool:
    """Whether a snapshot this far past the previous checkpoint is kept as the next one: at least
    BOARD_CHECKPOINT_EVERY updates later, and once the updates in between add up to as many bytes
    as the previous checkpoint (so checkpoints take at most the room of the log plus one document,
    and replaying from one applies at most about a document's worth of updates)."""
    return updates >= settings.BOARD_CHECKPOINT_EVERY and raw_bytes >= CHECKPOINT_BYTES_RATIO * anchor_bytes


def _anchor_before(board: str, sequence: int) -> tuple[int, int, int]:
    """(number, bytes) of the highest snapshot below `sequence` ((0, 0): the empty document), and
    the bytes of the updates from it up to `sequence` still in the log."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH anchor AS (
                SELECT sequence, octet_length(state) AS bytes FROM {_SNAPSHOTS}
                 WHERE board_id = %(board)s AND sequence < %(sequence)s ORDER BY sequence DESC LIMIT 1
            )
            SELECT COALESCE((SELECT sequence FROM anchor), 0), COALESCE((SELECT bytes FROM anchor), 0),
                   COALESCE((SELECT sum(octet_length(update)) FROM {_UPDATES}
                              WHERE board_id = %(board)s AND sequence <= %(sequence)s
                                AND sequence > COALESCE((SELECT sequence FROM anchor), 0)), 0)
            """,
            {"board": board, "sequence": sequence},
        )
        anchor, anchor_bytes, raw = cursor.fetchone()
    return int(anchor), int(anchor_bytes), int(raw)


def prune_point(board_id: uuid.UUID | str, *, last_sequence: int, now: dt.datetime) -> int:
    """The highest snapshot at most `last_sequence` − BOARD_KEEP_UPDATES whose number was reached
    more than BOARD_KEEP_UPDATES_DAYS ago; 0 if none."""
    limit = last_sequence - settings.BOARD_KEEP_UPDATES
    if limit <= 0:
        return 0
    cutoff = now - dt.timedelta(days=settings.BOARD_KEEP_UPDATES_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.sequence FROM {_SNAPSHOTS} AS s
             WHERE s.board_id = %(board)s AND s.sequence <= %(limit)s
               -- When that number was reached: its update's time, or the snapshot's own if the
               -- update is gone (it was written after the update).
               AND COALESCE(
                     (SELECT created_at FROM {_UPDATES} WHERE board_id = %(board)s AND sequence = s.sequence),
                     s.created_at) < %(cutoff)s
             ORDER BY s.sequence DESC LIMIT 1
            """,
            {"board": str(board_id), "limit": limit, "cutoff": cutoff},
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _prune(board: str, last: int, now: dt.datetime) -> int:
    """Delete the updates up to the prune point (a snapshot stays there); how many."""
    point = prune_point(board, last_sequence=last, now=now)
    if point == 0:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_UPDATES} WHERE board_id = %s AND sequence <= %s", [board, point])
        return cursor.rowcount


def boards_due(*, prunable: bool = False, limit: int = 1000) -> list[str]:
    """Boards whose log has grown BOARD_COMPACT_AFTER updates past their latest snapshot; with
    `prunable`, also those whose log still holds updates a snapshot covers (pruning may be due as
    they age). By id, at most `limit` (a long list is worked through over several runs)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT b.id FROM {_BOARDS} AS b
              LEFT JOIN LATERAL (
                  SELECT max(sequence) AS sequence FROM {_SNAPSHOTS} WHERE board_id = b.id
              ) AS s ON true
             WHERE b.last_sequence - COALESCE(s.sequence, 0) >= %(threshold)s
                OR (%(prunable)s AND b.last_sequence > %(keep)s
                    AND (SELECT min(sequence) FROM {_UPDATES} WHERE board_id = b.id) <= s.sequence)
             ORDER BY b.id LIMIT %(limit)s
            """,
            {
                "threshold": settings.BOARD_COMPACT_AFTER,
                "prunable": prunable,
                "keep": settings.BOARD_KEEP_UPDATES,
                "limit": limit,
            },
        )
        return [str(row[0]) for row in cursor.fetchall()]


def compact_due(*, prunable: bool = False) -> list[Compaction]:
    """Compact (and prune) every board that is due (boards.tasks); one failing board does not
    stop the rest."""
    done = []
    for board in boards_due(prunable=prunable):
        try:
            result = compact_board(board)
        except Exception:
            logger.exception("board %s: compaction failed", board)
            continue
        if result is not None:
            done.append(result)
    return done
