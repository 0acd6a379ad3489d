"""The authoritative board documents of this process: one pycrdt Doc per open board.

A board is open while a socket of this process has joined it (`open`/`close`, boards.consumers)
or while a request works on it (`using`): the last one out evicts the document. Each document is
kept in step with the database: whoever uses it first brings it up to the sequence it needs
(`catch_up`: the stored updates it has not applied yet, or, when those were compacted away, a
reload from the latest snapshot). Writers (boards.services) hold the board's row lock and the
document's `lock` from catching up to commit, so a reader never sees an update that is not stored,
and a failed write throws the document away (`invalidate`): the next use reloads it.

Threads: REST requests and the socket's database thread use the same documents; every use of
`doc` holds `lock`.
"""

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from pycrdt import Doc

from boards.compaction import load_document
from boards.models import BoardUpdate


@dataclass(eq=False)
class LiveDoc:
    board_id: uuid.UUID
    doc: Doc | None = None  # None: not loaded (or thrown away): the next catch_up loads it
    sequence: int = 0  # the number of the latest stored update applied to `doc`
    users: int = 0  # sockets that joined it + requests using it; evicted at 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_docs: dict[uuid.UUID, LiveDoc] = {}
_registry = threading.Lock()


def _key(board_id: object) -> uuid.UUID:
    return board_id if isinstance(board_id, uuid.UUID) else uuid.UUID(str(board_id))


def open(board_id: object) -> LiveDoc:  # noqa: A001 (the module's verb)
    """One more user of the board's document (made on first use, loaded lazily)."""
    key = _key(board_id)
    with _registry:
        live = _docs.get(key)
        if live is None:
            live = _docs[key] = LiveDoc(key)
        live.users += 1
        return live


def close(board_id: object) -> None:
    """One user fewer; the last one evicts the document."""
    key = _key(board_id)
    with _registry:
        live = _docs.get(key)
        if live is None:
            return
        live.users -= 1
        if live.users <= 0:
            del _docs[key]


@contextlib.contextmanager
def using(board_id: object) -> Iterator[LiveDoc]:
    live = open(board_id)
    try:
        yield live
    finally:
        close(board_id)


def peek(board_id: object) -> LiveDoc | None:
    """The board's document if this process has it open (tests, benchmarks)."""
    return _docs.get(_key(board_id))


def open_count() -> int:
    return len(_docs)


def invalidate(live: LiveDoc) -> None:
    """Throw the document away (a write failed after touching it): reloaded on next use."""
    live.doc, live.sequence = None, 0


def catch_up(live: LiveDoc, upto: int) -> Doc:
    """Bring `live` (whose `lock` the caller holds) to at least sequence `upto` from the database:
    the stored updates after its own sequence, or, when the log there was compacted away, the
    latest snapshot and the updates after it."""
    if live.doc is not None and live.sequence >= upto:
        return live.doc
    if live.doc is not None:
        updates = list(
            BoardUpdate.objects.filter(board_id=live.board_id, sequence__gt=live.sequence, sequence__lte=upto)
            .order_by("sequence")
            .values_list("sequence", "update")
        )
        if len(updates) == upto - live.sequence:  # contiguous (sequences are gapless)
            for sequence, update in updates:
                live.doc.apply_update(bytes(update))
                live.sequence = sequence
            return live.doc
    live.doc, live.sequence = load(live.board_id, upto)
    return live.doc


def load(board_id: uuid.UUID, upto: int) -> tuple[Doc, int]:
    """The document at `upto` (or the latest stored state at or below it that the database can
    give: the latest snapshot ≤ upto and every update after it), and its sequence. One statement
    (boards.compaction.load_document): a prune between reading the snapshot and reading the log
    cannot leave a hole in it."""
    loaded = load_document(board_id, upto)
    return loaded.doc, loaded.sequence
