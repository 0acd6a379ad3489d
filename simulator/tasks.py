"""Simulations run here, in a Celery worker, never in the web process (docs/protocol.md
"Simulations").

`run_simulation` drives the engine's `Simulation` step by step: paced at the run's `speed`
(simulated seconds per wall second; null: as fast as it goes), reporting at most SIM_PROGRESS_HZ
times a second of wall time (simulator.services.run_report: the latest snapshot written to the row
and streamed to the board as `simulation.progress`; pending faults and the cancel flag read back),
then storing the results. Progress frames are at most once (Redis pub/sub): the row holds the
latest state for anyone who joins late or reconnects.
"""

import logging
import time

from celery import shared_task
from django.conf import settings

from simulator import services
from simulator.engine.design import Design, DesignError
from simulator.engine.faults import Fault
from simulator.engine.run import Simulation
from simulator.models import SimulationCommand, SimulationRun

logger = logging.getLogger(__name__)

# Simulated seconds per step when a run is not paced: small enough to report and to notice a
# cancel a few times a second on a large design, large enough not to slow the engine down.
UNPACED_STEP_S = 0.5  # simulated seconds


@shared_task(acks_late=False)
def run_simulation(run_id: str) -> str:
    """Run one queued simulation to its end (or until cancelled). Returns its final status."""
    run = services.run_claim(run_id)
    if run is None:
        return "not queued"
    try:
        return execute(run)
    except Exception as error:  # a bug in the engine or here: the run fails, the worker lives on
        logger.exception("simulation %s failed", run_id)
        services.run_fail(run.pk, f"The simulation failed: {type(error).__name__}: {error!s:.500}")
        return SimulationRun.Status.FAILED


def execute(run: SimulationRun) -> str:
    parameters = run.parameters or {}
    speed = parameters.get("speed")
    try:
        sim = Simulation(
            Design.from_json(run.design),
            seed=run.seed,
            duration_s=run.duration_s,
            faults=[Fault.from_json(f) for f in run.faults],
            max_requests=parameters.get("max_requests") or settings.SIM_MAX_REQUESTS,
        )
    except DesignError as error:
        services.run_fail(run.pk, f"The design cannot run: {error}")
        return SimulationRun.Status.FAILED
    duration = sim.duration
    report_every = 1.0 / max(1, settings.SIM_PROGRESS_HZ)
    # Steps end on multiples of the engine's step (as simulate() does): the figures of a seed are the
    # same at any speed, paced or not (live faults aside).
    wanted = speed * report_every if speed else UNPACED_STEP_S
    chunk = max(1, round(wanted / sim.step)) * sim.step
    started = time.monotonic()
    next_report = started + report_every
    cancelled, overdue, t = False, "", 0.0
    while sim.now < duration - 1e-9 and not sim.stopped:
        t = min(duration, t + chunk)
        sim.step_until(t)
        if speed:
            wait = started + t / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        now = time.monotonic()
        if now < next_report and sim.now < duration - 1e-9:
            continue
        next_report = now + report_every
        snapshot = sim.snapshot().to_json()
        control = services.run_report(run, {"t": snapshot["t"], "fraction": round(sim.now / duration, 4), **snapshot})
        for command in control.commands:
            _inject(run, sim, command)
        if control.cancel:
            cancelled = True
            break
        if now - started > settings.SIM_MAX_WALL_S:
            overdue = f"The run took more than {settings.SIM_MAX_WALL_S} s of worker time and was stopped."
            break
    if cancelled or overdue:
        sim.stopped = True
    run = services.run_finish(run, sim.results().to_json(), cancelled=cancelled, error=overdue)
    return run.status


def _inject(run: SimulationRun, sim: Simulation, command: SimulationCommand) -> None:
    data = dict(command.fault)
    if data.get("at_s") is None:
        data["at_s"] = sim.now
    try:
        fault = Fault.from_json(data)
        sim.inject(fault)
    except (DesignError, KeyError, TypeError, ValueError) as refused:
        services.command_applied(run, command, fault=None, at_s=sim.now, why=str(refused)[:500])
        return
    services.command_applied(run, command, fault=fault, at_s=sim.now, why="")


@shared_task
def reap_runs() -> int:
    """Fail the runs whose worker died or that no worker took (simulator.services.runs_reap)."""
    reaped = services.runs_reap()
    if reaped:
        logger.warning("failed %d simulation runs left without a worker", reaped)
    return reaped
