"""What formatting costs a send: `make bench-format`.

Renders a corpus of chat messages (mostly plain one-liners, some with Markdown, a few with lists
and code blocks) with messaging.formatting.render (markdown-it-py + nh3, uncached) under timeit, and
times messaging.services.message_send (the REST/page driver: validation, the one INSERT statement,
commit, the event's payload and its publish to Redis) for the same texts with the rendering in
place and with it replaced by a constant, alternating the two in blocks within one run. Prints the
per-message figures and the ratio; writes bench/results/formatting.json. Only the ratios within
one run mean much on a machine other work loads too.
"""

import json
import os
import statistics
import sys
import time
import timeit
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from messaging import formatting, payloads  # noqa: E402
from messaging.services import message_send  # noqa: E402
from rooms.services import room_create  # noqa: E402

PLAIN = [
    "ok, see you at the standup",
    "Thanks! That fixed it.",
    "can you review my PR when you have a minute?",
    "lunch?",
    "I think the deploy went fine, checking the dashboards now",
    "Yes — let's do that tomorrow morning.",
    "haha",
    "The meeting moved to 3pm (room B).",
]
MARKDOWN = [
    "**heads up**: the build is red",
    "run `make test` before pushing",
    "see [the runbook](https://example.com/runbook) for the steps",
    "_maybe_ we should wait?",
]
BLOCKS = [
    "todo:\n- fix the flaky test\n- update the docs\n- ship it",
    "```\nSELECT count(*) FROM messaging_message;\n```\nthis one is slow",
    "> the server is down\nit is back now",
]
# 70 % plain, 20 % inline Markdown, 10 % blocks (what a busy room looks like, roughly).
CORPUS = (PLAIN * 9 + MARKDOWN * 5 + BLOCKS * 3)[:100]
SENDS_PER_BLOCK = int(os.environ.get("SENDS_PER_BLOCK", "100"))
BLOCKS_EACH = int(os.environ.get("BLOCKS_EACH", "6"))


def per_message_us(texts: list[str], number: int = 20) -> float:
    total = min(timeit.repeat(lambda: [formatting.render(t) for t in texts], number=number, repeat=5))
    return total / number / len(texts) * 1e6


def send_block(user: User, room_id: object) -> float:
    started = time.perf_counter()
    for i in range(SENDS_PER_BLOCK):
        message_send(user=user, room_id=room_id, content=CORPUS[i % len(CORPUS)], client_msg_id=uuid.uuid4())
    return (time.perf_counter() - started) / SENDS_PER_BLOCK * 1e3


def main() -> int:
    call_command("migrate", interactive=False, verbosity=0)
    user = User.objects.create_user(f"format-{uuid.uuid4().hex[:6]}", password=None)
    room = room_create(creator=user, name="format bench", kind="private")
    render_all = per_message_us(CORPUS)
    render_plain = per_message_us(PLAIN)
    render_markdown = per_message_us(MARKDOWN + BLOCKS)
    real = payloads.message_html
    with_render, without_render = [], []
    send_block(user, room.pk)  # warm up
    for _ in range(BLOCKS_EACH):
        formatting.cache.clear()
        with_render.append(send_block(user, room.pk))
        payloads.message_html = lambda message_id, version, text: ""
        try:
            without_render.append(send_block(user, room.pk))
        finally:
            payloads.message_html = real
    send_with = statistics.median(with_render)
    send_without = statistics.median(without_render)
    figures = {
        "render_us_per_message_corpus": round(render_all, 1),
        "render_us_plain": round(render_plain, 1),
        "render_us_markdown": round(render_markdown, 1),
        "send_ms_with_render": round(send_with, 3),
        "send_ms_without_render": round(send_without, 3),
        "render_share_of_send_timeit": round(render_all / 1000 / send_without, 4),
        "send_difference_ms": round(send_with - send_without, 3),
    }
    for name, value in figures.items():
        print(f"{name:<32}{value:>12}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "formatting.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
