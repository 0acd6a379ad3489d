"""Simulations on the one socket (docs/protocol.md "Simulations"): simulation.start,
simulation.cancel and simulation.inject, composed into messaging.consumers.ChatConsumer
(`FRAME_HANDLERS`, `FRAME_KINDS`). They call the same services as REST; the live events
(simulation.started/progress/fault/finished) reach the sockets that joined the board, through the
board's group (boards.consumers relays them)."""

from collections.abc import Awaitable, Callable
from typing import Any

from core.errors import InvalidInput
from core.events import call_service, dumps
from simulator import services
from simulator.payloads import run_payload

Socket = Any  # messaging.consumers.ChatConsumer


def _field(frame: dict, name: str) -> str:
    value = frame.get(name)
    if value is None or value == "":
        raise InvalidInput(f'"{name}" is required.', fields={name: ["This field is required."]})
    if not isinstance(value, str):
        raise InvalidInput(f'"{name}" must be a string.', fields={name: ["Must be a string."]})
    return value


async def _on_start(socket: Socket, frame: dict) -> None:
    board_id = _field(frame, "board")
    data = {k: v for k, v in frame.items() if k not in ("type", "board")}
    run = await call_service(_start, user=socket.user, board_id=board_id, data=data)
    await socket.send(text_data=dumps({"type": "simulation.start.ack", "board": board_id, "simulation": run}))


def _start(*, user, board_id: str, data: dict) -> dict:
    return dict(run_payload(services.run_start(user=user, board_id=board_id, data=data)))


async def _on_cancel(socket: Socket, frame: dict) -> None:
    run_id = _field(frame, "run")
    run = await call_service(_cancel, user=socket.user, run_id=run_id)
    await socket.send(text_data=dumps({"type": "simulation.cancel.ack", "run": run_id, "simulation": run}))


def _cancel(*, user, run_id: str) -> dict:
    return dict(run_payload(services.run_cancel(user=user, run_id=run_id)))


async def _on_inject(socket: Socket, frame: dict) -> None:
    run_id = _field(frame, "run")
    command = await call_service(services.run_inject, user=socket.user, run_id=run_id, fault=frame.get("fault"))
    ack = {"type": "simulation.inject.ack", "run": run_id, "command": command.pk, "fault": command.fault}
    await socket.send(text_data=dumps(ack))


FRAME_HANDLERS: dict[str, Callable[[Socket, dict], Awaitable[None]]] = {
    "simulation.start": _on_start,
    "simulation.cancel": _on_cancel,
    "simulation.inject": _on_inject,
}
# Every simulation frame draws on the `edit` budget (3 a second per socket, bursts of 15).
FRAME_KINDS = dict.fromkeys(FRAME_HANDLERS, "edit")
