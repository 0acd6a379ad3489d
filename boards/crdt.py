"""The board document on the server: pycrdt (Yrs, the Rust port of Yjs) speaking the Yjs v1 update
format the browser's Yjs sends. Pure functions of bytes and documents: no database, no Django
models (boards.documents keeps each open board's document; boards.services decides what is
stored).

The schema (docs/protocol.md "Boards"): `elements`, a map of element id -> map of plain JSON
properties; `meta`, board settings. The JSON rendering orders elements by (`z`, id).
"""

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, Map

from core.errors import ApplicationError, InvalidInput

ELEMENTS = "elements"
META = "meta"
MAX_UPDATE_BYTES = 256 * 1024
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024


class TooLarge(ApplicationError):
    code = "too_large"
    status = 400
    message = "Too large."


def b64decode(value: object, *, field: str, required: bool = True) -> bytes | None:
    """Standard base64 (padding optional) from a frame or request field, or `invalid` naming it."""
    if value is None or value == "":
        if not required:
            return None
        raise InvalidInput(f'"{field}" is required.', fields={field: ["This field is required."]})
    if not isinstance(value, str):
        raise InvalidInput(f'"{field}" must be a base64 string.', fields={field: ["Must be a base64 string."]})
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f'"{field}" is not valid base64.', fields={field: ["Not valid base64."]}) from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_update_size(update: bytes) -> None:
    if len(update) > MAX_UPDATE_BYTES:
        raise TooLarge(f"An update is at most {MAX_UPDATE_BYTES // 1024} KB.")


def validate_update(update: bytes) -> None:
    """Refuse bytes that are not a decodable Yjs v1 update (`invalid`, fields.update). Decoding
    is checked on a scratch document, so the live one never sees a malformed update."""
    check_update_size(update)
    if not update:
        raise InvalidInput("An update cannot be empty.", fields={"update": ["This field may not be blank."]})
    try:
        Doc().apply_update(update)
    except Exception as error:  # pycrdt raises ValueError (and may raise others on bad input)
        raise InvalidInput(
            "The update is not a valid Yjs v1 update.", fields={"update": [f"Not a Yjs v1 update: {error}"[:200]]}
        ) from None


def new_doc(updates: Iterable[bytes] = ()) -> Doc:
    """A document with `updates` applied in order (a snapshot's state first, then the log)."""
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def apply(doc: Doc, update: bytes) -> None:
    doc.apply_update(update)


def encode_state(doc: Doc) -> bytes:
    """The whole document as one v1 update."""
    return doc.get_update()


def encode_diff(doc: Doc, state_vector: bytes | None) -> bytes:
    """What a client with `state_vector` lacks (the whole document without one); a malformed
    state vector is `invalid` (fields.state_vector)."""
    if state_vector is None:
        return doc.get_update()
    try:
        return doc.get_update(state_vector)
    except ValueError:
        raise InvalidInput(
            "state_vector is not a Yjs state vector.", fields={"state_vector": ["Not a Yjs state vector."]}
        ) from None


def state_vector(doc: Doc) -> bytes:
    return doc.get_state()


def size(doc: Doc) -> int:
    """Bytes of the encoded document."""
    return len(doc.get_update())


def merge(updates: Iterable[bytes]) -> bytes:
    """Several updates as one v1 update of their merged state (snapshots)."""
    return encode_state(new_doc(updates))


def render(doc: Doc) -> dict[str, list[dict[str, Any]]]:
    """`{"elements": [{"id", <every property>}]}` ordered by (z, id); values under `elements`
    that are not maps are skipped, unknown properties passed through.

    The map is turned into JSON by Yrs itself (`str(map)`: whole numbers come out as integers,
    NaN and infinities as null, binary as arrays of bytes) and parsed once: three to four times
    faster than walking it from Python (`to_py`), which matters for a 10,000-element board."""
    return render_json(elements_json(doc))


def elements_json(doc: Doc) -> str:
    """The document's elements as Yrs writes them (JSON text): the only step of `render` that
    needs the document, so a shared document's lock is held for this alone (render_json after)."""
    return str(doc.get(ELEMENTS, type=Map))


def render_json(text: str) -> dict[str, list[dict[str, Any]]]:
    """`render` from `elements_json`'s text."""
    raw = json.loads(text or "{}")
    elements = []
    for element_id, value in raw.items():
        if isinstance(value, dict):
            value.pop("id", None)
            z = value.get("z")
            elements.append(((z if isinstance(z, str) else "", element_id), element_id, value))
    elements.sort(key=lambda item: item[0])
    return {"elements": [{"id": key, **{k: value[k] for k in sorted(value)}} for _, key, value in elements]}


def render_update(update: bytes) -> dict[str, list[dict[str, Any]]]:
    """The rendering of the document one update (e.g. a snapshot's state) makes on its own."""
    return render(new_doc([update]))
