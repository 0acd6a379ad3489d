"""Helpers for the boards tests: pycrdt clients that make Yjs updates like the browser does."""

import base64
import uuid

from pycrdt import Doc, Map

from boards import crdt


class Client:
    """A board client: its own document, the updates it made, and the numbers it has."""

    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.elements = self.doc.get("elements", type=Map)

    def edit(self, element_id: str, **props) -> bytes:
        """Set properties of an element (made if missing); the Yjs update of that change."""
        before = self.doc.get_state()
        with self.doc.transaction():
            if element_id in self.elements:
                element = self.elements[element_id]
                for key, value in props.items():
                    element[key] = value
            else:
                self.elements[element_id] = Map(props)
        return self.doc.get_update(before)

    def delete(self, element_id: str) -> bytes:
        before = self.doc.get_state()
        if element_id in self.elements:
            del self.elements[element_id]
        return self.doc.get_update(before)

    def apply(self, update: bytes | str) -> None:
        self.doc.apply_update(update if isinstance(update, bytes) else base64.b64decode(update))

    def state_vector(self) -> str:
        return b64(self.doc.get_state())

    def render(self) -> dict:
        return crdt.render(self.doc)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def update_frame(board, update: bytes, key: object = None) -> dict:
    return {
        "type": "board.update",
        "board": str(getattr(board, "pk", board)),
        "update": b64(update),
        "client_update_id": str(key or uuid.uuid4()),
    }
