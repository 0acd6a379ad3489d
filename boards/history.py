"""Reads for replay and export: the board's timeline (who changed which elements, update by
update), its state at a number, and its JSON export. Access as for reading the board
(boards.selectors.board_get_for: viewers included); replay's documents come from the database
(boards.compaction.load_document), so replay never disturbs the live documents; the export is
`GET /boards/{id}/`'s rendering (boards.selectors.board_rendering: the live document, cached per
number).

Which elements an update touched is computed on read: the document is loaded at the page's start
and each update of the page applied to it while a deep observer of `elements` notes the element ids
whose entry or properties changed. Below the log's prune point (boards.compaction) there are no
updates to show, only the checkpoint snapshots, which `checkpoints` lists for a replay slider.
"""

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from pycrdt import Doc, Map

from accounts.models import User
from boards import compaction, crdt
from boards.models import Board, BoardSnapshot, BoardUpdate
from boards.payloads import BoardPayload, ElementPayload, board_payload
from boards.selectors import board_get_for, board_rendering
from core.events import dumps
from rooms.payloads import DateTimeStr, UserPayload, user_payload

HISTORY_PAGE_MAX = 500
TOUCHED_MAX = 100  # element ids listed per entry; `elements_total` counts them all


class HistoryEntry(TypedDict):
    sequence: int
    user: Annotated[UserPayload | None, "Who sent the update (null once the account is gone)"]
    created_at: DateTimeStr
    elements: Annotated[list[str], "The ids of the elements the update added, changed or removed (at most 100)"]
    elements_total: Annotated[int, "How many elements it touched"]


class HistoryPage(TypedDict):
    board: Annotated[str, "The board's id"]
    entries: Annotated[list[HistoryEntry], "Oldest first, after `after_sequence`"]
    has_more: bool
    last_sequence: Annotated[int, "The board's latest number"]
    log_start: Annotated[
        int, "Updates numbered above this are in the log; at or below it only checkpoints can be replayed"
    ]
    checkpoints: Annotated[list[int], "Numbers with a stored snapshot: replay stops below `log_start`"]


class StatePayload(TypedDict):
    board: str
    sequence: Annotated[int, "The number the state is at: `at`, or below the log's start the checkpoint before it"]
    requested: Annotated[int | None, "The `at` asked for (null: the latest)"]
    update: Annotated[str, "Base64 of the whole document at `sequence` as one Yjs v1 update"]


class ExportPayload(TypedDict):
    """The board as JSON (`GET /boards/{id}/export/`): the same rendering as `GET /boards/{id}/`."""

    format: Annotated[str, "parley.board"]
    version: Annotated[int, "1"]
    board: BoardPayload
    sequence: Annotated[int, "The number of the latest update the export includes"]
    exported_at: DateTimeStr
    elements: Annotated[list[ElementPayload], "Ordered by (z, id): `id` plus every property"]


def _touched_recorder(doc: Doc) -> tuple[set[str], Callable[[], None]]:
    """The ids of the elements changed since it was last cleared, and a function that stops it."""
    touched: set[str] = set()

    def record(events: list) -> None:
        for event in events:
            path = event.path
            if path:
                touched.add(str(path[0]))
            else:
                touched.update(str(key) for key in event.keys)

    elements = doc.get(crdt.ELEMENTS, type=Map)
    subscription = elements.observe_deep(record)
    return touched, lambda: elements.unobserve(subscription)


# Replay reads walk forward: the history pages one after another, the slider's states mostly
# forward. The document a read ended at is kept (a few per process) so that the next read that
# starts at or after it applies only the updates in between instead of loading from a snapshot.
# A document at a number never changes (numbers commit in order), so a kept one stays right.
_REPLAY_DOCS: "OrderedDict[tuple[str, int], Doc]" = OrderedDict()
_REPLAY_LOCK = threading.Lock()
REPLAY_DOCS_KEPT = 4


def _document_at(board_id: object, number: int) -> tuple[Doc, int]:
    """The board's document at `number` (below the log's start: the snapshot before it) and the
    number it is at; the caller owns it until it hands it back with `_keep`."""
    board = str(board_id)
    with _REPLAY_LOCK:
        kept = max((s for b, s in _REPLAY_DOCS if b == board and s <= number), default=None)
        doc = _REPLAY_DOCS.pop((board, kept)) if kept is not None else None
    if doc is not None and kept is not None:
        # Worth it only if no snapshot lies between (loading that one applies fewer updates).
        nearest = BoardSnapshot.objects.filter(board_id=board, sequence__lte=number).order_by("-sequence").first()
        if nearest is None or nearest.sequence <= kept:
            rows = BoardUpdate.objects.filter(board_id=board, sequence__gt=kept, sequence__lte=number)
            sequence = kept
            for step, data in rows.order_by("sequence").values_list("sequence", "update"):
                if step != sequence + 1:
                    break  # pruned meanwhile: load instead
                doc.apply_update(bytes(data))
                sequence = step
            else:
                return doc, sequence
    loaded = compaction.load_document(board, number)
    return loaded.doc, loaded.sequence


def _keep(board_id: object, sequence: int, doc: Doc) -> None:
    with _REPLAY_LOCK:
        _REPLAY_DOCS[(str(board_id), sequence)] = doc
        _REPLAY_DOCS.move_to_end((str(board_id), sequence))
        while len(_REPLAY_DOCS) > REPLAY_DOCS_KEPT:
            _REPLAY_DOCS.popitem(last=False)


def history_page(*, user: User, board_id: object, after_sequence: int = 0, limit: int = 100) -> HistoryPage:
    """The timeline after `after_sequence` (or from the log's start, if that is later)."""
    board, _ = board_get_for(user=user, board_id=board_id)
    limit = max(1, min(limit, HISTORY_PAGE_MAX))
    for _attempt in range(3):  # a prune between the reads below moves the log's start: read again
        start = max(after_sequence, compaction.log_start(board.pk))
        doc, sequence = _document_at(board.pk, start)
        updates = list(
            BoardUpdate.objects.filter(board=board, sequence__gt=sequence)
            .select_related("user")
            .order_by("sequence")[: limit + 1]
        )
        if not updates or updates[0].sequence == sequence + 1:
            break
    has_more = len(updates) > limit
    touched, stop = _touched_recorder(doc)
    entries: list[HistoryEntry] = []
    for update in updates[:limit]:
        touched.clear()
        doc.apply_update(bytes(update.update))
        sequence = update.sequence
        ids = sorted(touched)
        entries.append(
            {
                "sequence": update.sequence,
                "user": user_payload(update.user),
                "created_at": update.created_at.isoformat(),
                "elements": ids[:TOUCHED_MAX],
                "elements_total": len(ids),
            }
        )
    stop()
    _keep(board.pk, sequence, doc)  # the next page (or a replay state after it) continues from here
    board.refresh_from_db(fields=["last_sequence"])
    return {
        "board": str(board.pk),
        "entries": entries,
        "has_more": has_more,
        "last_sequence": board.last_sequence,
        "log_start": compaction.log_start(board.pk),
        "checkpoints": compaction.checkpoint_sequences(board.pk),
    }


def state_at(*, user: User, board_id: object, at: int | None = None) -> StatePayload:
    """The whole document at `at` (the latest without it), as one base64 Yjs v1 update."""
    board, _ = board_get_for(user=user, board_id=board_id)
    doc, sequence = _document_at(board.pk, board.last_sequence if at is None else min(at, board.last_sequence))
    update = crdt.encode_state(doc)
    _keep(board.pk, sequence, doc)
    return {"board": str(board.pk), "sequence": sequence, "requested": at, "update": crdt.b64encode(update)}


def export(*, user: User, board_id: object) -> tuple[Board, str]:
    """The board as an ExportPayload, as JSON text (the elements are spliced in as rendered)."""
    board, _ = board_get_for(user=user, board_id=board_id)
    sequence, elements = board_rendering(board=board)  # as GET /boards/{id}/'s, cached per number
    head: dict[str, Any] = {
        "format": "parley.board",
        "version": 1,
        "board": board_payload(board),
        "sequence": sequence,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return board, dumps(head)[:-1] + ',"elements":' + elements + "}"
