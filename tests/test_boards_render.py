"""The board's JSON rendering (boards.crdt.render) is the same as walking the document from Python,
whatever the elements hold; plain tests, no database."""

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from boards import crdt


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def reference_render(doc: Doc) -> dict:
    """The rendering by definition: to_py, whole floats as integers, (z, id) order, id first."""
    raw = doc.get(crdt.ELEMENTS, type=Map).to_py() or {}
    elements = [
        {**{key: _plain(item) for key, item in value.items() if key != "id"}, "id": element_id}
        for element_id, value in raw.items()
        if isinstance(value, dict)
    ]
    elements.sort(key=lambda e: (e["z"] if isinstance(e.get("z"), str) else "", e["id"]))
    return {"elements": [{"id": e["id"], **{k: e[k] for k in sorted(e) if k != "id"}} for e in elements]}


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=12,
)
element = st.dictionaries(
    st.sampled_from(["id", "type", "x", "y", "w", "h", "z", "text", "points", "from", "params", "extra"]),
    json_value,
    max_size=8,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(element, json_leaf), max_size=12))
def test_the_rendering_is_the_documents_content_in_z_and_id_order(elements):
    doc: Doc = Doc()
    target = doc.get(crdt.ELEMENTS, type=Map)
    with doc.transaction():
        for key, value in elements.items():
            target[key] = Map(value) if isinstance(value, dict) else value
    rendered = crdt.render(doc)
    assert rendered == reference_render(doc)
    # And it is plain JSON (round-trips).
    assert json.loads(json.dumps(rendered)) == rendered


def test_values_python_cannot_put_in_json_come_out_as_json():
    doc: Doc = Doc()
    target = doc.get(crdt.ELEMENTS, type=Map)
    target["a"] = Map({"nan": math.nan, "inf": math.inf, "bytes": b"\x00\x01", "z": "a"})
    target["b"] = Map({"points": Array([1.0, 2.5]), "text": Text("hi"), "z": "b"})
    assert crdt.render(doc) == {
        "elements": [
            {"id": "a", "bytes": [0, 1], "inf": None, "nan": None, "z": "a"},
            {"id": "b", "points": [1, 2.5], "text": "hi", "z": "b"},
        ]
    }
