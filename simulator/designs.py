"""A board's document as a simulator design, and its problems keyed by element id.

The design lives in the board's Yjs document (docs/protocol.md "Simulations"): a **component** is an
element of `type: "component"` with `kind` (a palette kind) and `params` (an object of parameter
values; missing ones take the palette's defaults); a **connector** is an element of `type: "arrow"`
whose `from` or `to` names a component, with optional `params` (`weight`, `route`). Arrows between
other elements (annotations) are not part of the design; an arrow with only one end on a component
is a dangling connector. Element ids are the design's component and connector ids, so every problem
and every figure of a run names the element to show it at.
"""

from dataclasses import dataclass
from typing import Any

from boards import selectors as board_selectors
from boards.models import Board
from simulator.engine.design import ERROR, Design, DesignError, Problem, validate

COMPONENT = "component"
ARROW = "arrow"


@dataclass(frozen=True)
class Extracted:
    design: dict[str, Any]  # Design JSON (components with x/y, connectors)
    sequence: int  # the board's update number the document was read at
    problems: list[dict[str, Any]]  # every problem, keyed by element_id (null: the whole design)

    @property
    def valid(self) -> bool:
        return not any(p["severity"] == ERROR for p in self.problems)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def design_from_elements(elements: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(design JSON, problems found while reading it) from the board's JSON rendering."""
    problems: list[dict[str, Any]] = []
    components: list[dict[str, Any]] = []
    ids: set[str] = set()
    for element in elements:
        if element.get("type") != COMPONENT:
            continue
        element_id = str(element["id"])
        kind, params = element.get("kind"), element.get("params", {})
        if not isinstance(kind, str) or not kind:
            problems.append(_problem(element_id, "missing_kind", "this component has no kind"))
            continue
        if params is None:
            params = {}
        if not isinstance(params, dict):
            problems.append(_problem(element_id, "malformed", "its params must be an object"))
            continue
        component: dict[str, Any] = {"id": element_id, "kind": kind, "params": params}
        text = element.get("text")
        if isinstance(text, str) and text.strip():  # what people call it on the canvas (its first line)
            component["label"] = text.strip().splitlines()[0][:80]
        x, y = _number(element.get("x")), _number(element.get("y"))
        if x is not None and y is not None:
            component["x"], component["y"] = x, y
        components.append(component)
        ids.add(element_id)
    connectors: list[dict[str, Any]] = []
    for element in elements:
        if element.get("type") != ARROW:
            continue
        source, target = element.get("from"), element.get("to")
        if source not in ids and target not in ids:
            continue  # an annotation between other elements
        element_id = str(element["id"])
        params = element.get("params") or {}
        if not isinstance(params, dict):
            problems.append(_problem(element_id, "malformed", "its params must be an object"))
            continue
        connector_params = {key: params[key] for key in ("weight", "route") if key in params}
        connectors.append(
            {
                "id": element_id,
                "from": source if isinstance(source, str) and source else "(nothing)",
                "to": target if isinstance(target, str) and target else "(nothing)",
                "params": connector_params,
            }
        )
    return {"components": components, "connectors": connectors}, problems


def _problem(element_id: str | None, code: str, message: str, severity: str = ERROR) -> dict[str, Any]:
    return {"element_id": element_id, "code": code, "message": message, "severity": severity}


def problem_payload(problem: Problem) -> dict[str, Any]:
    return _problem(problem.component_id or problem.connector_id, problem.code, problem.message, problem.severity)


def check(design: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's validation of design JSON, as problems keyed by element id."""
    try:
        parsed = Design.from_json(design)
    except DesignError as error:
        return [problem_payload(p) for p in error.problems]
    return [problem_payload(p) for p in validate(parsed)]


def extract(elements: list[dict[str, Any]], sequence: int = 0) -> Extracted:
    design, problems = design_from_elements(elements)
    return Extracted(design=design, sequence=sequence, problems=problems + check(design))


def board_design(board: Board) -> Extracted:
    """The design in the board's current document (this process's live copy, caught up with the
    database), validated."""
    sequence, rendering = board_selectors.board_document(board=board)
    return extract(rendering["elements"], sequence)


def problems_by_element(problems: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The problems grouped by element id ("" for those about the whole design)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for problem in problems:
        grouped.setdefault(problem["element_id"] or "", []).append(problem)
    return grouped
