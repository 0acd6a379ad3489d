"""The authoritative board documents of this process: one pycrdt Doc per open board.

A board is open while a socket of this process has joined it (`open`/`close`, boards.consumers)
or while a request works on it (`using`). When the last one leaves, the document stays cached for
IDLE_SECONDS (at most IDLE_MAX idle documents, least recently used out first), so that a writer or
reader over REST does not reload the board for every request; an idle document is evicted after
that. Each document is
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
import time
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
    users: int = 0  # sockets that joined it + requests using it; idle (cached a while) at 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    idle_since: float = 0.0  # time.monotonic() when `users` fell to 0


IDLE_SECONDS = 30.0
IDLE_MAX = 16  # a document may be up to 10 MB encoded (crdt.MAX_DOCUMENT_BYTES)

_docs: dict[uuid.UUID, LiveDoc] = {}
_idle: dict[uuid.UUID, LiveDoc] = {}  # users == 0, oldest first (insertion order)
_registry = threading.Lock()


def _key(board_id: object) -> uuid.UUID:
    return board_id if isinstance(board_id, uuid.UUID) else uuid.UUID(str(board_id))


def open(board_id: object) -> LiveDoc:  # noqa: A001 (the module's verb)
    """One more user of the board's document (made on first use, loaded lazily)."""
    key = _key(board_id)
    with _registry:
        live = _docs.get(key)
        if live is None:
            live = _idle.pop(key, None)
            if live is None or live.idle_since < time.monotonic() - IDLE_SECONDS:
                live = LiveDoc(key)
            _docs[key] = live
        live.users += 1
        return live


def close(board_id: object) -> None:
    """One user fewer; after the last one the document is idle: cached for IDLE_SECONDS."""
    key = _key(board_id)
    with _registry:
        live = _docs.get(key)
        if live is None:
            return
        live.users -= 1
        if live.users <= 0:
            del _docs[key]
            now = live.idle_since = time.monotonic()
            if live.doc is not None:
                _idle[key] = live
            _expire(now)


def _expire(now: float) -> None:
    """Evict idle documents past IDLE_SECONDS or beyond IDLE_MAX (the registry lock held)."""
    horizon = now - IDLE_SECONDS
    while _idle:
        key, oldest = next(iter(_idle.items()))
        if oldest.idle_since >= horizon and len(_idle) <= IDLE_MAX:
            break
        del _idle[key]


def forget(board_id: object) -> None:
    """Drop an idle document at once (the board was deleted)."""
    with _registry:
        _idle.pop(_key(board_id), None)


@contextlib.contextmanager
def using(board_id: object) -> Iterator[LiveDoc]:
    live = open(board_id)
    try:
        yield live
    finally:
        close(board_id)


def peek(board_id: object) -> LiveDoc | None:
    """The board's document if this process has it open (tests, benchmarks); not an idle one."""
    return _docs.get(_key(board_id))


def cached(board_id: object) -> LiveDoc | None:
    """The board's idle document, if it is cached (tests)."""
    return _idle.get(_key(board_id))


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
