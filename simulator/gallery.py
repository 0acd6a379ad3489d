"""The template gallery as board documents: a template's components and connectors as the Yjs
update that makes them elements of a board (components as `type: "component"` boxes at the
template's layout, connectors as arrows attached to them), built with pycrdt."""

from typing import Any

from pycrdt import Map

from boards import crdt
from simulator.engine.palette import PALETTE
from simulator.engine.templates import TEMPLATES

COMPONENT_W, COMPONENT_H = 160, 80


def templates() -> list[dict[str, Any]]:
    return TEMPLATES


def template_get(template_id: object) -> dict[str, Any] | None:
    return next((t for t in TEMPLATES if t["id"] == template_id), None)


def _z(prefix: str, index: int) -> str:
    # Arrows under components; ordered as the template lists them (z keys sort as strings).
    return f"{prefix}{index:04d}"


def elements_of(design: dict[str, Any], *, user_id: int | None) -> dict[str, dict[str, Any]]:
    """Element id → properties (docs/protocol.md "The document") for a design: the component and
    connector ids become element ids, so the design read back from the board is the template's."""
    elements: dict[str, dict[str, Any]] = {}
    boxes: dict[str, tuple[float, float]] = {}
    for index, component in enumerate(design["components"]):
        x, y = float(component.get("x", 0)), float(component.get("y", 0))
        boxes[component["id"]] = (x + COMPONENT_W / 2, y + COMPONENT_H / 2)
        spec = PALETTE.get(component["kind"])
        elements[component["id"]] = {
            "type": "component",
            "kind": component["kind"],
            "params": dict(component.get("params", {})),
            "text": f"{component['id']}\n{spec.label if spec else component['kind']}",
            "x": x,
            "y": y,
            "w": COMPONENT_W,
            "h": COMPONENT_H,
            "angle": 0,
            "z": _z("c", index),
            "createdBy": user_id,
        }
    for index, connector in enumerate(design["connectors"]):
        (x1, y1), (x2, y2) = boxes[connector["from"]], boxes[connector["to"]]
        elements[connector["id"]] = {
            "type": "arrow",
            "from": connector["from"],
            "to": connector["to"],
            "params": dict(connector.get("params", {})),
            "x": x1,
            "y": y1,
            "points": [0, 0, x2 - x1, y2 - y1],
            "angle": 0,
            "z": _z("a", index),
            "createdBy": user_id,
        }
    return elements


def template_update(template: dict[str, Any], *, user_id: int | None) -> bytes:
    """The Yjs v1 update that adds the template's elements to an empty board."""
    doc = crdt.new_doc()
    elements = doc.get(crdt.ELEMENTS, type=Map)
    with doc.transaction():
        for element_id, properties in elements_of(template["design"], user_id=user_id).items():
            elements[element_id] = Map(properties)
    return crdt.encode_state(doc)


__all__ = ["template_get", "template_update", "templates"]
