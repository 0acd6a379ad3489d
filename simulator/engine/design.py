"""Designs (components joined by connectors) and their validation.

A design is JSON: ``{"components": [{"id", "kind", "params", "x"?, "y"?}], "connectors": [{"id", "from", "to",
"params": {"weight"?, "route"?}}]}``. `Design.from_json` only checks the shape (it raises `DesignError` for JSON
that is not a design at all); `validate` returns every problem with the component or connector it belongs to,
so the canvas can show it there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .palette import PALETTE, ROUTES

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    component_id: str | None
    connector_id: str | None
    code: str
    message: str
    severity: str = ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "component_id": self.component_id,
            "connector_id": self.connector_id,
            "code": self.code,
            "message": self.message,
            "severity": self.severity,
        }


class DesignError(ValueError):
    """A design that cannot be simulated; `problems` says why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems) or "invalid design")


@dataclass
class Component:
    id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    x: float | None = None
    y: float | None = None

    def param(self, name: str) -> Any:
        """The parameter's value, or the palette's default."""
        if name in self.params:
            return self.params[name]
        return PALETTE[self.kind].param_map[name].default


@dataclass
class Connector:
    id: str
    source: str
    target: str
    weight: float = 1.0
    route: str = "any"


@dataclass
class Design:
    components: list[Component]
    connectors: list[Connector]

    @classmethod
    def from_json(cls, data: Any) -> Design:
        problems: list[Problem] = []
        if not isinstance(data, dict):
            raise DesignError([Problem(None, None, "malformed", "a design is a JSON object")])
        raw_components = data.get("components", [])
        raw_connectors = data.get("connectors", [])
        if not isinstance(raw_components, list) or not isinstance(raw_connectors, list):
            raise DesignError([Problem(None, None, "malformed", "components and connectors must be lists")])
        components: list[Component] = []
        for i, c in enumerate(raw_components):
            if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("kind"), str):
                problems.append(Problem(None, None, "malformed", f"component #{i} needs a string id and kind"))
                continue
            params = c.get("params", {})
            if not isinstance(params, dict):
                problems.append(Problem(c["id"], None, "malformed", "params must be an object"))
                continue
            x, y = c.get("x"), c.get("y")
            components.append(
                Component(
                    c["id"],
                    c["kind"],
                    dict(params),
                    float(x) if isinstance(x, int | float) else None,
                    float(y) if isinstance(y, int | float) else None,
                )
            )
        connectors: list[Connector] = []
        for i, k in enumerate(raw_connectors):
            if not isinstance(k, dict) or not all(isinstance(k.get(f), str) for f in ("id", "from", "to")):
                problems.append(Problem(None, None, "malformed", f"connector #{i} needs string id, from and to"))
                continue
            params = k.get("params", {})
            if not isinstance(params, dict):
                problems.append(Problem(None, k["id"], "malformed", "params must be an object"))
                continue
            weight = params.get("weight", 1.0)
            route = params.get("route", "any")
            connectors.append(Connector(k["id"], k["from"], k["to"], weight, route))
        if problems:
            raise DesignError(problems)
        return cls(components, connectors)

    def to_json(self) -> dict[str, Any]:
        comps = []
        for c in self.components:
            d: dict[str, Any] = {"id": c.id, "kind": c.kind, "params": dict(c.params)}
            if c.x is not None:
                d["x"] = c.x
            if c.y is not None:
                d["y"] = c.y
            comps.append(d)
        return {
            "components": comps,
            "connectors": [
                {"id": k.id, "from": k.source, "to": k.target, "params": {"weight": k.weight, "route": k.route}}
                for k in self.connectors
            ],
        }

    def component(self, cid: str) -> Component:
        for c in self.components:
            if c.id == cid:
                return c
        raise KeyError(cid)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_params(c: Component) -> list[Problem]:
    spec = PALETTE[c.kind]
    out: list[Problem] = []
    for name, value in c.params.items():
        p = spec.param_map.get(name)
        if p is None:
            out.append(Problem(c.id, None, "unknown_param", f"{spec.label} has no parameter '{name}'", WARNING))
            continue
        if p.type == "bool":
            if not isinstance(value, bool):
                out.append(Problem(c.id, None, "invalid_param", f"{name} must be true or false"))
            continue
        if p.type == "choice":
            if value not in p.choices:
                out.append(Problem(c.id, None, "invalid_param", f"{name} must be one of {', '.join(p.choices)}"))
            continue
        if not _is_number(value) or (p.type == "int" and float(value) != int(value)):
            out.append(
                Problem(
                    c.id, None, "invalid_param", f"{name} must be {'an integer' if p.type == 'int' else 'a number'}"
                )
            )
            continue
        if p.min is not None and value < p.min:
            what = "negative" if value < 0 <= p.min else f"below {p.min}"
            out.append(Problem(c.id, None, "invalid_param", f"{name} = {value} is {what} (at least {p.min})"))
        elif p.max is not None and value > p.max:
            out.append(Problem(c.id, None, "invalid_param", f"{name} = {value} is above {p.max}"))
    if c.kind == "service" and not out and c.param("min_instances") > c.param("max_instances"):
        out.append(Problem(c.id, None, "invalid_param", "min_instances is above max_instances"))
    return out


def _cycles(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            succ = edges.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1 or v in succ:
                    out.append(sorted(scc, key=nodes.index))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def validate(design: Design) -> list[Problem]:
    """Every problem of the design; those with severity "error" stop a run."""
    problems: list[Problem] = []
    ids: dict[str, Component] = {}
    for c in design.components:
        if c.id in ids:
            problems.append(Problem(c.id, None, "duplicate_id", f"two components are called '{c.id}'"))
        ids[c.id] = c
        if c.kind not in PALETTE:
            problems.append(Problem(c.id, None, "unknown_kind", f"unknown component kind '{c.kind}'"))
        else:
            problems.extend(_check_params(c))
    conn_ids: set[str] = set()
    edges: dict[str, list[str]] = {}
    for k in design.connectors:
        if k.id in conn_ids or k.id in ids:
            problems.append(Problem(None, k.id, "duplicate_id", f"the id '{k.id}' is used twice"))
        conn_ids.add(k.id)
        dangling = [end for end in (k.source, k.target) if end not in ids]
        if dangling:
            problems.append(
                Problem(
                    None,
                    k.id,
                    "dangling_connector",
                    f"connector '{k.id}' points at no component ({', '.join(dangling)})",
                )
            )
            continue
        if not _is_number(k.weight) or k.weight < 0:
            problems.append(Problem(None, k.id, "invalid_param", f"weight must be a number ≥ 0 (got {k.weight!r})"))
        if k.route not in ROUTES:
            problems.append(Problem(None, k.id, "invalid_param", f"route must be one of {', '.join(ROUTES)}"))
        if ids[k.target].kind == "client":
            problems.append(Problem(None, k.id, "invalid_connector", "a client population cannot receive requests"))
        edges.setdefault(k.source, []).append(k.target)
    order = [c.id for c in design.components]
    for scc in _cycles(order, edges):
        if not any(ids[v].kind == "queue" for v in scc):
            problems.append(
                Problem(
                    scc[0],
                    None,
                    "cycle_without_queue",
                    "requests loop " + " → ".join([*scc, scc[0]]) + " with no queue to break the cycle",
                )
            )
    clients = [c for c in design.components if c.kind == "client"]
    if not clients:
        problems.append(Problem(None, None, "no_entry_point", "the design has no client population to send requests"))
    for c in clients:
        if not edges.get(c.id):
            problems.append(
                Problem(c.id, None, "entry_not_connected", "this client population is connected to nothing")
            )
    # Reachability (a warning: unreachable components simply see no traffic).
    seen = {c.id for c in clients}
    frontier = list(seen)
    while frontier:
        v = frontier.pop()
        for w in edges.get(v, []):
            if w not in seen:
                seen.add(w)
                frontier.append(w)
    if clients:
        for c in design.components:
            if c.id not in seen:
                problems.append(Problem(c.id, None, "unreachable", "no request can reach this component", WARNING))
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]
