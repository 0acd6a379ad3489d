"""The JSON rendering of a board's document (`crdt.render`'s elements, as JSON text), kept up to
date incrementally in each process, so that rendering a big board at a new number costs what
changed since the last rendering rather than the whole board (docs/performance.md "Boards").

Per board a `Mirror`: a pycrdt document that follows the live document (boards.documents) one
diff at a time, and each element's rendered JSON text. To render at a number, the reader takes
from the live document (under its lock, at a committed number) what the mirror lacks
(`Doc.get_update(mirror's state vector)`), applies it to the mirror while an observer notes which
elements it touched, re-renders those alone, and joins every element's text in (z, id) order.
The output is exactly `crdt.render`'s (tests/test_boards_rendering.py compares them). A diff can
only add what the live document has, and the live document only ever holds committed updates
(boards.documents), so the mirror never runs ahead of the board.
"""

import json
import threading
from collections import OrderedDict
from typing import Any

from pycrdt import Doc, Map

from boards import crdt

MIRRORS_KEPT = 8  # boards rendered recently, per process (each holds a copy of its document)
FULL_RENDER_SHARE = 4  # more than 1/4 of the elements touched: render them all in one go


def _item(element_id: str, value: dict[str, Any]) -> tuple[tuple[str, str], str]:
    """(sort key, JSON text) of one element, as crdt.render_json writes it."""
    value.pop("id", None)
    z = value.get("z")
    ordered = {"id": element_id, **{k: value[k] for k in sorted(value)}}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    return (z if isinstance(z, str) else "", element_id), text


class Mirror:
    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.elements = self.doc.get(crdt.ELEMENTS, type=Map)
        self.items: dict[str, tuple[tuple[str, str], str]] = {}
        self.sequence = -1  # the number `text` is at (-1: nothing rendered yet)
        self.text = "[]"
        self.lock = threading.Lock()  # taken before the live document's lock, never after it
        self.touched: set[str] = set()
        self.elements.observe_deep(self._record)

    def _record(self, events: list) -> None:
        for event in events:
            path = event.path
            if path:
                self.touched.add(str(path[0]))
            else:
                self.touched.update(str(key) for key in event.keys)

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def advance(self, diff: bytes | None, sequence: int) -> str:
        """Apply what the mirror lacked (None: nothing) and render at `sequence`."""
        self.touched.clear()
        if diff:
            self.doc.apply_update(diff)
        touched, self.touched = self.touched, set()
        if touched and len(touched) * FULL_RENDER_SHARE > max(len(self.items), 1):
            raw = json.loads(str(self.elements) or "{}")
            self.items = {key: _item(key, value) for key, value in raw.items() if isinstance(value, dict)}
        else:
            for key in touched:
                value = self.elements[key] if key in self.elements else None
                if isinstance(value, Map):
                    self.items[key] = _item(key, json.loads(str(value)))
                else:
                    self.items.pop(key, None)
        if touched or self.sequence < 0:
            self.text = "[" + ",".join(text for _, text in sorted(self.items.values())) + "]"
        self.sequence = sequence
        return self.text


_MIRRORS: "OrderedDict[str, Mirror]" = OrderedDict()
_MIRRORS_LOCK = threading.Lock()


def mirror(board_id: object) -> Mirror:
    """The board's mirror (made on first use; the least recently used ones go)."""
    key = str(board_id)
    with _MIRRORS_LOCK:
        found = _MIRRORS.get(key)
        if found is None:
            found = _MIRRORS[key] = Mirror()
        _MIRRORS.move_to_end(key)
        while len(_MIRRORS) > MIRRORS_KEPT:
            _MIRRORS.popitem(last=False)
        return found


def forget(board_id: object) -> None:
    with _MIRRORS_LOCK:
        _MIRRORS.pop(str(board_id), None)
