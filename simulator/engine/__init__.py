"""The system-design simulator's engine: pure Python + numpy, no Django.

- `design`: `Design.from_json`, `validate` → `Problem`s, `DesignError`.
- `palette`: `PALETTE` (kinds, parameter specs, prices), `palette_json()`.
- `run`: `simulate(design, seed=..., duration_s=..., faults=..., progress=..., should_stop=..., max_requests=...)`
  → `Results`; `Simulation` (`step_until`, `inject`, `snapshot`, `results`) for live runs; `Fault`; `Snapshot`.
- `templates`: `TEMPLATES`, the gallery.
- `analysis`: visit ratios, capacities and headroom.
"""

from .design import Design, DesignError, Problem, validate
from .faults import Fault
from .palette import PALETTE, palette_json
from .run import Results, Simulation, Snapshot, simulate
from .templates import TEMPLATES

__all__ = [
    "PALETTE",
    "TEMPLATES",
    "Design",
    "DesignError",
    "Fault",
    "Problem",
    "Results",
    "Simulation",
    "Snapshot",
    "palette_json",
    "simulate",
    "validate",
]
