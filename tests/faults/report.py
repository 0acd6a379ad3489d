"""Render the fault suite's results file as the tables of docs/reliability.md.

    python tests/faults/report.py                         # print the tables (.data/faults/results.json)
    python tests/faults/report.py --write docs/reliability.md   # replace them in the document

The tables go between the `<!-- results:start -->` and `<!-- results:end -->` lines.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
FLEET_ORDER = [
    "redis_cut",
    "redis_freeze",
    "pg_cut",
    "pg_freeze",
    "pg_restart",
    "server_kill",
    "worker_kill",
    "slow_consumer",
    "burst",
]


def pair(values: list | None) -> str:
    return "–" if not values else f"{values[0]:g}/{values[1]:g}"


def phases(figures: dict, key: str) -> str:
    return " · ".join(pair(figures[key].get(phase)) for phase in ("before", "during", "after"))


def yes(value: bool) -> str:
    return "yes" if value else "**no**"


def counts(mapping: dict) -> str:
    return ", ".join(f"{code} {n}" for code, n in mapping.items() if n) or "none"


def recovery(figures: dict) -> str:
    since = {"restore": "after restore", "fault": "after the fault"}.get(figures.get("recovery_since"), "")
    if figures.get("recovery_s") is None:
        return f"**not within {figures.get('after_s')} s**" if figures.get("after_s") is not None else "–"
    return f"{figures['recovery_s']:g} s {since}"


def fleet_table(scenarios: dict) -> list[str]:
    lines = [
        "| scenario | sent / acked / stored | lost · dup · reordered · views differ "
        "| unanswered > 10 s (longest answer) | recovery | send ms p50/p99 before · during · after "
        "| live ms p50/p99 before · during · after | errors by code | closed by server |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = [n for n in FLEET_ORDER if n in scenarios] + sorted(
        n for n in scenarios if n not in FLEET_ORDER and "sent" in scenarios[n]
    )
    for name in names:
        f = scenarios[name]
        integrity = f"{f['lost']} · {f['duplicates']} · {f['reordered']} · {f['views_differ']}"
        lines.append(
            f"| **{name}**: {f['title']} | {f['sent']} / {f['acked']} / {f['stored']} | {integrity} "
            f"| {f['unanswered']} ({f['max_answer_s']} s) | {recovery(f)} | {phases(f, 'send_ms')} "
            f"| {phases(f, 'live_ms')} | {counts(f['errors'])} | {counts(f['close_codes'])} |"
        )
    return lines


def burst_table(scenarios: dict) -> list[str]:
    bursts = [f for n, f in sorted(scenarios.items()) if n.startswith("burst")]
    if not bursts:
        return []
    lines = [
        "| sockets | outcome | ready ms p50/p99 (max) | whole burst | next message live on all | their closes |",
        "|---|---|---|---|---|---|",
    ]
    for f in bursts:
        rate = f["burst"] / f["burst_s"] if f["burst_s"] else 0
        lines.append(
            f"| {f['burst']:,} | {counts(f['burst_outcomes'])} "
            f"| {pair(f['burst_ready_ms'])} ({f['burst_max_ready_s']} s) | {f['burst_s']} s ({rate:.0f}/s) "
            f"| {f['burst_live']:,} in {f['burst_fan_out_s']} s "
            f"| {counts(f['burst_close_codes'])} |"
        )
    return lines


def celery_table(scenarios: dict) -> list[str]:
    f = scenarios.get("celery_kill")
    if not f:
        return []
    records = ", ".join(f"{day}: {r['status']} after {r['attempts']} attempts" for day, r in f["records"].items())
    return [
        "| step | result |",
        "|---|---|",
        f"| kill 1, while uploading (S3 frozen), {f['kill_1_after_s']:.1f} s after the task was sent "
        f"| partition and every row intact; record `{f['state_after_kill_1']['status']}` |",
        f"| kill 2, while verifying (S3 slowed, then frozen), {f['kill_2_after_s']:.1f} s after it was sent again "
        f"| partition and every row intact; record `{f['state_after_kill_2']['status']}` |",
        f"| task sent a third time | both days archived in {f['rerun_s']} s; {records}; "
        f"{len(f['keys'])} objects, each under its key once; partitions left: {len(f['partitions_left'])} |",
        f"| history afterwards | {f['archived_rows']} archived rows; every page identical to before: "
        f"{yes(f['pages_equal'])}; hot rows unchanged: {yes(f['hot_rows_equal'])} |",
    ]


def s3_table(scenarios: dict) -> list[str]:
    f = scenarios.get("s3_history")
    if not f:
        return []
    lines = [
        "| S3 | archived page over REST | archived page over the socket | socket kept | hot page "
        "| archived page again after |",
        "|---|---|---|---|---|---|",
    ]

    def rest(outcome: dict) -> str:
        what = outcome["status"] if outcome["status"] != "no_answer" else "**no answer**"
        code = f" `{outcome['code']}`" if outcome.get("code") else ""
        kind = " JSON" if outcome.get("json") else ""
        return f"{what}{kind}{code} in {outcome['s']} s"

    order = ["healthy", "missing", "cut", "errors", "freeze"]
    for name, case in sorted(f["cases"].items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        socket = case["socket"]
        answer = socket["type"] if socket["type"] != "no_answer" else "**no answer**"
        code = f" `{socket['code']}`" if socket.get("code") else ""
        recovered = f"{case['recovered_s']} s" if case["recovered_s"] is not None else "**not within 10 s**"
        lines.append(
            f"| {name} | {rest(case['archived'])} | {answer}{code} in {socket['s']} s "
            f"| {yes(case['socket_alive'])} | {rest(case['hot'])} | {recovered} |"
        )
    return lines


def render(results: dict) -> str:
    scenarios = results.get("scenarios", {})
    stamps = sorted({f["at"] for f in scenarios.values() if "at" in f})
    machine = next((f["machine"] for f in scenarios.values() if "machine" in f), "")
    out = [f"Measured {stamps[0] if stamps else ''}–{stamps[-1][-5:] if stamps else ''} on {machine}.", ""]
    for title, table in (
        ("Clients under each fault", fleet_table(scenarios)),
        ("The connection burst", burst_table(scenarios)),
        ("Celery worker killed mid-archive", celery_table(scenarios)),
        ("History of archived days while S3 misbehaves", s3_table(scenarios)),
    ):
        if table:
            out += [f"#### {title}", "", *table, ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / ".data" / "faults" / "results.json")
    parser.add_argument("--write", type=Path, help="replace the tables in this document")
    args = parser.parse_args(argv)
    tables = render(json.loads(args.results.read_text()))
    if not args.write:
        print(tables)
        return 0
    document = args.write.read_text()
    if START not in document or END not in document:
        print(f"{args.write} has no {START} ... {END} block", file=sys.stderr)
        return 1
    head, rest = document.split(START, 1)
    args.write.write_text(f"{head}{START}\n{tables}{END}{rest.split(END, 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
