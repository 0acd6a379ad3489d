"""Compaction of a board's log into snapshots, what replay keeps, and loading after it."""

import datetime as dt
import threading
import uuid

import pytest
from django.db import connection
from django.db import connections as db_connections
from django.utils import timezone
from pycrdt import Doc, Map

from boards import compaction, crdt, services
from boards.models import Board, BoardSnapshot, BoardUpdate
from boards.tasks import compact_boards, prune_boards
from rooms.models import Room
from tests.conftest import room_with


class Editor:
    """A client's Yjs document (pycrdt): each change is one transaction, one v1 update."""

    def __init__(self, client_id: int) -> None:
        self.doc: Doc = Doc(client_id=client_id)
        self.elements = self.doc.get("elements", type=Map)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def add(self, element_id: str, **properties) -> bytes:
        with self.doc.transaction():
            self.elements[element_id] = Map({"type": "rect", "x": 0, "y": 0, "w": 10, "h": 10, **properties})
        return self.updates[-1]

    def set(self, element_id: str, **properties) -> bytes:
        with self.doc.transaction():
            for key, value in properties.items():
                self.elements[element_id][key] = value
        return self.updates[-1]

    def remove(self, element_id: str) -> bytes:
        with self.doc.transaction():
            del self.elements[element_id]
        return self.updates[-1]


@pytest.fixture
def count_only(monkeypatch):
    """Checkpoints every BOARD_CHECKPOINT_EVERY updates, whatever the bytes (small test logs)."""
    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)


@pytest.fixture
def board(make_user):
    owner = make_user("owner")
    room = room_with(owner, "Drawing", Room.Kind.PRIVATE)
    return services.board_create(user=owner, room_id=room.pk, title="Plan"), owner


def write(board: Board, user, update: bytes) -> int:
    stored, created = services.board_update_apply(
        user=user, board_id=board.pk, update=update, client_update_id=uuid.uuid4()
    )
    assert created
    return stored.sequence


def edit_history(board: Board, user, count: int) -> dict[int, dict]:
    """`count` updates by one editor (adds, moves, text edits, deletes); the rendering after each."""
    editor = Editor(1)
    renderings = {}
    for n in range(1, count + 1):
        element = f"e{n % 7}"
        if element not in editor.elements:
            update = editor.add(element, z=f"a{n % 3}", x=n)
        elif n % 11 == 0:
            update = editor.remove(element)
        else:
            update = editor.set(element, x=n * 1.5, y=-n, text=f"edit {n}")
        assert write(board, user, update) == n
        renderings[n] = crdt.render(editor.doc)
    return renderings


def rendering_at(board: Board, at: int | None = None) -> tuple[int, dict]:
    loaded = compaction.load_document(board.pk, at)
    return loaded.sequence, crdt.render(loaded.doc)


@pytest.mark.django_db
def test_compaction_keeps_the_same_document(board, settings):
    settings.BOARD_CHECKPOINT_EVERY = 1000
    board, owner = board
    renderings = edit_history(board, owner, 40)
    before = rendering_at(board)
    assert before == (40, renderings[40])

    result = compaction.compact_board(board.pk)

    assert result is not None and (result.from_sequence, result.sequence, result.updates_folded) == (0, 40, 40)
    snapshot = BoardSnapshot.objects.get(board=board)
    assert snapshot.sequence == 40
    assert crdt.render_update(bytes(snapshot.state)) == renderings[40]
    assert rendering_at(board) == before
    loaded = compaction.load_document(board.pk)
    assert (loaded.snapshot_sequence, loaded.updates_applied) == (40, 0)
    board.refresh_from_db()
    assert board.size == len(bytes(snapshot.state))  # measured exactly by the compaction
    # Nothing is pruned yet (the updates are recent): replay still has every number.
    assert BoardUpdate.objects.filter(board=board).count() == 40
    for n in (1, 17, 39):
        assert rendering_at(board, n) == (n, renderings[n])


@pytest.mark.django_db
def test_a_second_compaction_continues_from_the_snapshot_with_checkpoints(board, settings, count_only):
    settings.BOARD_CHECKPOINT_EVERY = 10
    board, owner = board
    renderings = edit_history(board, owner, 15)
    assert compaction.compact_board(board.pk).checkpoints == [10]
    renderings |= {15 + n: r for n, r in edit_history_more(board, owner, renderings, 22).items()}

    result = compaction.compact_board(board.pk)

    assert (result.from_sequence, result.sequence, result.updates_folded, result.checkpoints) == (15, 37, 22, [20, 30])
    # 15 was only the latest (5 past the checkpoint at 10): superseded, it goes.
    assert result.snapshots_dropped == 1
    assert compaction.checkpoint_sequences(board.pk) == [10, 20, 30, 37]
    for n in (10, 20, 30, 37):
        state = bytes(BoardSnapshot.objects.get(board=board, sequence=n).state)
        assert crdt.render_update(state) == renderings[n], n
    assert rendering_at(board) == (37, renderings[37])
    assert compaction.compact_board(board.pk) is None  # nothing new


def edit_history_more(board: Board, user, renderings: dict[int, dict], count: int) -> dict[int, dict]:
    """More updates by a second editor that starts from the board's state (a late joiner)."""
    editor = Editor(2)
    editor.doc.apply_update(crdt.encode_state(compaction.load_document(board.pk).doc))
    editor.updates.clear()
    out = {}
    for n in range(1, count + 1):
        element = f"f{n % 5}"
        update = editor.add(element, x=n) if element not in editor.elements else editor.set(element, x=n, w=n)
        write(board, user, update)
        out[n] = crdt.render(editor.doc)
    return out


@pytest.mark.django_db
def test_pruning_keeps_recent_updates_and_checkpoints_and_replay_works_at_their_granularity(
    board, settings, count_only
):
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    settings.BOARD_KEEP_UPDATES_DAYS = 30
    board, owner = board
    renderings = edit_history(board, owner, 35)
    compaction.compact_board(board.pk)
    assert BoardUpdate.objects.filter(board=board).count() == 35  # all younger than 30 days
    assert compaction.compact_board(board.pk) is None

    # 31 days later: everything up to the highest kept snapshot ≤ 35 - 5 goes.
    later = timezone.now() + dt.timedelta(days=31)
    result = compaction.compact_board(board.pk, now=later)

    assert (result.updates_folded, result.updates_pruned) == (0, 30)
    assert compaction.log_start(board.pk) == 30
    assert list(BoardUpdate.objects.filter(board=board).values_list("sequence", flat=True).order_by("sequence")) == [
        31,
        32,
        33,
        34,
        35,
    ]
    assert compaction.checkpoint_sequences(board.pk) == [10, 20, 30, 35]
    assert rendering_at(board) == (35, renderings[35])
    assert rendering_at(board, 32) == (32, renderings[32])  # above the prune point: every number
    assert rendering_at(board, 30) == (30, renderings[30])
    assert rendering_at(board, 25) == (20, renderings[20])  # below it: the checkpoint before
    assert rendering_at(board, 9) == (0, {"elements": []})


@pytest.mark.django_db
def test_pruning_never_reaches_into_the_last_updates_or_the_recent_days(board, settings, count_only):
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 20
    board, owner = board
    edit_history(board, owner, 25)
    compaction.compact_board(board.pk)
    later = timezone.now() + dt.timedelta(days=31)
    # The only kept snapshot ≤ 25 - 20 is none (10 > 5): nothing is pruned.
    assert compaction.compact_board(board.pk, now=later) is None
    assert BoardUpdate.objects.filter(board=board).count() == 25


@pytest.mark.django_db
def test_the_sync_of_a_pruned_range_says_compacted(board, settings, count_only):
    from boards.selectors import Compacted, board_updates

    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    board, owner = board
    edit_history(board, owner, 25)
    compaction.compact_board(board.pk, now=timezone.now() + dt.timedelta(days=31))
    assert compaction.log_start(board.pk) == 20
    with pytest.raises(Compacted):
        board_updates(board_id=board.pk, after_sequence=5, until_sequence=None, limit=10)
    page = board_updates(board_id=board.pk, after_sequence=20, until_sequence=None, limit=10)
    assert [u.sequence for u in page] == [21, 22, 23, 24, 25]


@pytest.mark.django_db
def test_checkpoints_take_no_more_room_than_the_log_plus_one_document(board, settings):
    settings.BOARD_CHECKPOINT_EVERY = 5
    board, owner = board
    editor = Editor(3)
    write(board, owner, editor.add("big", text="x" * 2000, z="a"))  # a large document...
    for n in range(200):  # ...moved in small steps
        write(board, owner, editor.set("big", x=n))
    raw = {u.sequence: len(bytes(u.update)) for u in BoardUpdate.objects.filter(board=board)}

    result = compaction.compact_board(board.pk)

    snapshots = dict(BoardSnapshot.objects.filter(board=board).values_list("sequence", "state"))
    assert result.checkpoints and sorted(snapshots) == [*result.checkpoints, 201]
    previous, previous_bytes = 0, 0
    for number in result.checkpoints:
        covered = sum(size for sequence, size in raw.items() if previous < sequence <= number)
        assert number - previous >= 5 and covered >= previous_bytes
        previous, previous_bytes = number, len(bytes(snapshots[number]))
    sizes = [len(bytes(snapshots[n])) for n in result.checkpoints]
    assert sum(sizes) <= sum(raw.values()) + sizes[-1]
    assert result.checkpoints[1] - result.checkpoints[0] > 5  # spaced by bytes, not by the count alone


@pytest.mark.django_db
def test_the_task_compacts_only_boards_past_the_threshold(board, make_user, settings):
    settings.BOARD_COMPACT_AFTER = 10
    board, owner = board
    quiet = services.board_create(user=owner, room_id=board.room_id, title="Quiet")
    edit_history(board, owner, 12)
    edit_history(quiet, owner, 9)

    assert compact_boards() == 1

    assert list(BoardSnapshot.objects.values_list("board_id", "sequence")) == [(board.pk, 12)]
    assert compact_boards() == 0
    edit_history_more(board, owner, {}, 9)
    assert compact_boards() == 0  # 9 past the snapshot
    assert prune_boards() == 0  # nothing old enough to prune either


@pytest.mark.django_db(transaction=True)
def test_an_update_written_during_compaction_is_kept_and_not_in_the_snapshot(board, monkeypatch):
    """A snapshot at S holds exactly the updates ≤ S; one committed while the fold runs takes S+1
    and stays in the log, so loading the board still has it."""
    board, owner = board
    renderings = edit_history(board, owner, 6)
    late = Editor(9)
    late.doc.apply_update(crdt.encode_state(compaction.load_document(board.pk).doc))
    late_update = late.add("late", x=99)
    encode = crdt.encode_state
    written = []

    def encode_while_someone_writes(doc):
        if not written:  # from another connection, committed before the snapshot is stored
            thread = threading.Thread(target=lambda: (written.append(write(board, owner, late_update)), close_db()))
            thread.start()
            thread.join()
        return encode(doc)

    monkeypatch.setattr(crdt, "encode_state", encode_while_someone_writes)
    result = compaction.compact_board(board.pk)

    assert written == [7] and result.sequence == 6
    assert crdt.render_update(bytes(BoardSnapshot.objects.get(board=board).state)) == renderings[6]
    assert rendering_at(board) == (7, crdt.render(late.doc))
    board.refresh_from_db()
    assert board.last_sequence == 7
    assert board.size == len(bytes(BoardSnapshot.objects.get(board=board).state)) + len(late_update)


def close_db() -> None:
    db_connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_second_compaction_of_the_same_board_skips(board):
    board, owner = board
    edit_history(board, owner, 3)
    other = db_connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x626F, str(board.pk)])
            assert compaction.compact_board(board.pk) is None
            cursor.execute("ROLLBACK")
    finally:
        other.close()
    assert compaction.compact_board(board.pk).sequence == 3
    assert connection.in_atomic_block is False


def test_the_compaction_tasks_are_scheduled_and_registered(settings):
    from config.celery_app import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"boards.tasks.compact_boards", "boards.tasks.prune_boards"} <= scheduled
    assert scheduled <= set(app.tasks)


@pytest.mark.django_db
def test_the_one_board_task_compacts_that_board(board):
    from boards.tasks import compact_board

    board, owner = board
    edit_history(board, owner, 4)
    assert compact_board(str(board.pk)) == 4
    assert compact_board(str(board.pk)) == 0


@pytest.mark.django_db
def test_a_live_document_behind_the_prune_point_catches_up_by_reloading(board, settings, count_only):
    """Another process's live document (left at #5) while this one writes, compacts and prunes:
    its next catch-up finds the log starting past it and reloads from the snapshot."""
    from boards import documents

    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    board, owner = board
    renderings = edit_history(board, owner, 5)
    elsewhere = documents.LiveDoc(board.pk)  # not in this process's registry: the writes pass it by
    with elsewhere.lock:
        documents.catch_up(elsewhere, 5)
    renderings |= {n + 5: r for n, r in edit_history_more(board, owner, renderings, 20).items()}
    compaction.compact_board(board.pk, now=timezone.now() + dt.timedelta(days=31))
    assert compaction.log_start(board.pk) == 20

    with elsewhere.lock:
        doc = documents.catch_up(elsewhere, 25)

    assert elsewhere.sequence == 25 and crdt.render(doc) == renderings[25]
