"""What a fault scenario must show, judged from its Run (tests/faults/clients.py) and the database.

Each check returns the problems it found (an empty list when the requirement holds), so that a
failing test names every offender; `figures()` computes the numbers docs/reliability.md reports.
"""

from collections import Counter
from dataclasses import dataclass

from tests.faults.clients import ANSWER_BOUND, Client, Run, Send

LIVE_BOUND = 1.0  # after a dependency returns, live delivery is back to normal within this (issue 12)


@dataclass
class Truth:
    """The room as PostgreSQL has it: (sequence, message id, client_msg_id, content), in order."""

    last_sequence: int
    messages: list[tuple[int, str, str, str]]


def db_truth(room_id: str) -> Truth:
    from django.db import connection

    from messaging.models import Message
    from rooms.models import Room

    try:
        rows = Message.objects.filter(room_id=room_id).order_by("sequence")
        messages = [
            (s, str(i), str(c), t) for s, i, c, t in rows.values_list("sequence", "id", "client_msg_id", "content")
        ]
        return Truth(Room.objects.get(pk=room_id).last_sequence, messages)
    finally:
        connection.close()  # called from a worker thread: leave no connection behind


# -- the checks ---------------------------------------------------------------------------------


def lost(run: Run, truth: Truth) -> list[str]:
    """Acked messages missing from history, or stored under another number than acked."""
    stored = {mid: seq for seq, mid, _, _ in truth.messages}
    problems = []
    for send in acked(run):
        if send.message_id not in stored:
            problems.append(f"{send.content} acked as #{send.sequence} but not in history")
        elif stored[send.message_id] != send.sequence:
            problems.append(f"{send.content} acked as #{send.sequence}, stored as #{stored[send.message_id]}")
    return problems


def duplicates(run: Run, truth: Truth) -> list[str]:
    """A message stored twice (same content or client_msg_id), a number used twice or skipped,
    a message nobody sent, or two acks of one send naming different messages."""
    problems = []
    for what, counts in (
        ("content", Counter(content for *_, content in truth.messages)),
        ("client_msg_id", Counter(cmid for _, _, cmid, _ in truth.messages)),
    ):
        problems += [f"{what} {value} stored {n} times" for value, n in counts.items() if n > 1]
    numbers = [seq for seq, *_ in truth.messages]
    if numbers != list(range(1, truth.last_sequence + 1)):
        problems.append(f"numbers are not 1..{truth.last_sequence} without gaps: {numbers[:5]}...")
    sent = {send.client_msg_id for send in run.sends}
    problems += [f"{content} stored but never sent" for _, _, cmid, content in truth.messages if cmid not in sent]
    return problems


def views(clients: list[Client], truth: Truth) -> list[str]:
    """After catch-up, every client's view of the room is the database's, number for number."""
    expected = {seq: mid for seq, mid, _, _ in truth.messages}
    problems = []
    for client in clients:
        problems += client.conflicts
        if client.view != expected:
            missing = sorted(set(expected) - set(client.view))
            wrong = sorted(n for n in client.view if expected.get(n) != client.view[n])
            problems.append(f"{client.name}: view differs (missing {missing[:10]}, wrong {wrong[:10]})")
    return problems


def live_order(run: Run) -> list[str]:
    """On every socket, live message.new numbers go up one at a time from its session.ready."""
    problems = []
    for connection in run.connections:
        expected = connection.ready_sequence
        for number, _ in connection.live:
            if expected is not None and number != expected + 1:
                kind = "reordered/duplicate" if number <= expected else "skipped"
                problems.append(f"{connection.client} on {connection.server}: #{number} after #{expected} ({kind})")
                break
            expected = number
    return problems


def unanswered(run: Run) -> list[str]:
    """Sends (attempts) not answered, by an ack or a clear error, within ANSWER_BOUND."""
    problems = []
    for send in run.sends:
        for attempt in send.attempts:
            took = (attempt.ended or attempt.started) - attempt.started
            if attempt.outcome == "no_answer" or took > ANSWER_BOUND:
                problems.append(
                    f"{send.content} via {attempt.via}: no answer for {took:.1f}s (at {at(run, attempt.started)})"
                )
        if send.acked_at is None and send.gave_up is None:
            problems.append(f"{send.content}: never acked ({len(send.attempts)} attempts)")
        if send.gave_up:
            problems.append(f"{send.content}: answered {send.gave_up}, which is not a retryable error")
    return problems


def close_codes(run: Run) -> list[str]:
    """Every socket the server closed carried a close code, unless its process was SIGKILLed."""
    problems = []
    for connection in run.connections:
        if connection.closed_by != "server" or connection.close_code is not None:
            continue
        killed = any(  # its process was killed (the drop is noticed at once: within a second)
            server == connection.server and connection.opened_at <= when <= (connection.closed_at or when) <= when + 1
            for server, when in run.killed
        )
        if not killed:
            problems.append(f"{connection.client} on {connection.server}: dropped without a close code (1006)")
    return problems


def api_errors_are_json(run: Run) -> list[str]:
    return list(run.non_json)


def setbacks(run: Run, since: str = "restore") -> list[tuple[float, str]]:
    """What went wrong after `since`, by time: a failed attempt, or a send some open socket got
    late (over LIVE_BOUND) or not live at all."""
    start = run.marks[since]
    found = []
    for send in run.sends:
        for attempt in send.attempts:
            if attempt.started >= start and attempt.outcome != "ack":
                found.append((attempt.started, f"{send.content} via {attempt.via}: {attempt.outcome}"))
        success = send.succeeded
        if success is not None and success.started >= start and (late := late_sockets(run, send)):
            found.append((success.started, f"{send.content} (#{send.sequence}): {', '.join(late)}"))
    return sorted(found)


def recovery_time(run: Run, since: str = "restore") -> float | None:
    """Seconds from `since` until every send is acked at its first try and delivered live within
    LIVE_BOUND to every open socket; None if that never held before the end of the run."""
    start, end = run.marks[since], run.marks["end"]
    last_bad = max([start, *(moment for moment, _ in setbacks(run, since))])
    good = [s.succeeded.started for s in run.sends if s.succeeded is not None and s.succeeded.started > last_bad]
    if not good or min(good) > end:
        return None
    return max(0.0, min(good) - start)


def late_sockets(run: Run, send: Send) -> list[str]:
    """The sockets, open and ready throughout the LIVE_BOUND after the send started, that did not
    get it live within that bound ("ws1@:8001 after 9.8s", "ws2@:8002 not live")."""
    started = send.succeeded.started
    late = []
    for connection in run.connections:
        if connection.ready_at is None or connection.ready_at > started:
            continue
        if connection.closed_at is not None and connection.closed_at < started + LIVE_BOUND:
            continue
        when = connection.first_live().get(send.sequence)
        if when is None or when - started > LIVE_BOUND:
            where = f"{connection.client}@:{connection.server.rsplit(':', 1)[1]}"
            late.append(f"{where} " + (f"after {when - started:.1f}s" if when is not None else "not live"))
    return late


def late_deliveries(run: Run, since: str = "restore") -> list[str]:
    """Messages sent LIVE_BOUND or more after `since` that some open socket got late or not live
    (which sockets, and how late), each with where its sender was."""
    start = run.marks[since] + LIVE_BOUND
    problems = []
    for send in acked(run):
        if send.succeeded.started >= start and (late := late_sockets(run, send)):
            sender = send.succeeded.via.rsplit(":", 1)[1]
            problems.append(
                f"{send.content} (#{send.sequence}, sent via :{sender} at {at(run, send.succeeded.started)}): "
                + ", ".join(late)
            )
    return problems


# -- figures ------------------------------------------------------------------------------------


def acked(run: Run) -> list[Send]:
    return [send for send in run.sends if send.acked_at is not None]


def at(run: Run, moment: float) -> str:
    """A moment relative to the fault ("+1.2s after fault")."""
    origin = run.marks.get("fault", run.marks.get("start", moment))
    return f"t{moment - origin:+.1f}s"


def live_delays(run: Run, send: Send) -> list[float]:
    """Per socket open when it was sent: seconds from the send to its live message.new."""
    started = send.succeeded.started
    delays = []
    for connection in run.connections:
        if connection.ready_at is None or connection.ready_at > started:
            continue
        when = connection.first_live().get(send.sequence)
        if when is not None:
            delays.append(when - started)
    return delays


def percentiles(values: list[float]) -> list[float] | None:
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda p: ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]  # noqa: E731
    return [round(pick(0.5) * 1000, 1), round(pick(0.99) * 1000, 1)]


def phase_of(run: Run, moment: float) -> str:
    if "fault" not in run.marks or moment < run.marks["fault"]:
        return "before"
    if moment < run.marks.get("restore", float("inf")):
        return "during"
    return "after"


def figures(run: Run, clients: list[Client], truth: Truth, recovery_since: str = "restore") -> dict:
    """The numbers of one run, for the results file and docs/reliability.md."""
    send_ms: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    live_ms: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for send in acked(run):
        send_ms[phase_of(run, send.first_at)].append(send.acked_at - send.first_at)
        live_ms[phase_of(run, send.succeeded.started)] += live_delays(run, send)
    answer_ms: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for send in run.sends:
        for attempt in send.attempts:
            if attempt.ended is not None:
                answer_ms[phase_of(run, attempt.started)].append(attempt.ended - attempt.started)
    answers = [value for values in answer_ms.values() for value in values]
    closes = Counter(
        str(c.close_code or 1006) for c in run.connections if c.closed_by == "server" and c.closed_at is not None
    )
    recovery = recovery_time(run, recovery_since) if recovery_since in run.marks else None
    late = late_deliveries(run, recovery_since) if recovery_since in run.marks else []
    return {
        "sent": len(run.sends),
        "acked": len(acked(run)),
        "stored": len(truth.messages),
        "lost": len(lost(run, truth)),
        "duplicates": len(duplicates(run, truth)),
        "reordered": len(live_order(run)),
        "views_differ": len(views(clients, truth)),
        "unanswered": len(unanswered(run)),
        "max_answer_s": round(max(answers), 2) if answers else None,
        "recovery_s": round(recovery, 2) if recovery is not None else None,
        "recovery_since": recovery_since,
        "late_live": len(late),  # messages sent 1 s or more after it that some socket got late or not live
        "after_s": round(run.marks["end"] - run.marks["restore"], 1) if "restore" in run.marks else None,
        "send_ms": {phase: percentiles(values) for phase, values in send_ms.items()},
        "live_ms": {phase: percentiles(values) for phase, values in live_ms.items()},
        "answer_ms": {phase: percentiles(values) for phase, values in answer_ms.items()},
        "errors": dict(sorted(run.errors.items())),
        "close_codes": dict(sorted(closes.items())),
        "non_json": len(run.non_json),
        "sockets": len(run.connections),
        "notes": run.notes,
    }
