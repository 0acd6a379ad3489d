"""Message formatting (messaging/formatting.py): the safe Markdown subset, what never survives
sanitising, the fast path for plain text, and the `html` every copy of a message carries."""

import re
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from messaging import formatting
from messaging.formatting import render
from messaging.services import message_edit
from tests.conftest import client_for, room_with, send_message
from tests.sockets import connect, receive_type

LINK_ATTRS = 'target="_blank" rel="noopener noreferrer nofollow"'


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("hello", "<p>hello</p>"),
        ("**bold** and __bold__", "<p><strong>bold</strong> and <strong>bold</strong></p>"),
        ("*it* and _it_", "<p><em>it</em> and <em>it</em></p>"),
        ("use `a < b`", "<p>use <code>a &lt; b</code></p>"),
        ("```python\nif a < b:\n    pass\n```", "<pre><code>if a &lt; b:\n    pass\n</code></pre>"),
        ("    indented code", "<pre><code>indented code\n</code></pre>"),
        (
            "[Parley](https://example.com/a?b=1&c=2)",
            f'<p><a href="https://example.com/a?b=1&amp;c=2" {LINK_ATTRS}>Parley</a></p>',
        ),
        ("<https://example.com>", f'<p><a href="https://example.com" {LINK_ATTRS}>https://example.com</a></p>'),
        ("[mail](mailto:ada@example.com)", f'<p><a href="mailto:ada@example.com" {LINK_ATTRS}>mail</a></p>'),
        ("> quoted\n> twice", "<blockquote>\n<p>quoted<br>\ntwice</p>\n</blockquote>"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>'),
        ("line one\nline two", "<p>line one<br>\nline two</p>"),
        # Not in the subset: shown as the text they are.
        ("# not a heading", "<p># not a heading</p>"),
        ("---", "<p>---</p>"),
        ('He said "hi" & left <soon>', '<p>He said "hi" &amp; left &lt;soon&gt;</p>'),
        # Images are not shown: the picture's address becomes a link.
        ("![cat](https://example.com/cat.png)", f'<p>!<a href="https://example.com/cat.png" {LINK_ATTRS}>cat</a></p>'),
        ("   ", ""),
    ],
)
def test_each_supported_construct_renders(text, html):
    assert render(text) == html


XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](data:image/svg+xml,<svg onload=alert(1)>)",
    '<https://example.com" onmouseover="alert(1)>',
    '[x](https://example.com "title" onclick=alert(1))',
    "**<b onclick=alert(1)>nested</b>** *[in](javascript:alert(1))*",
    "> <iframe src=https://evil.example></iframe>\n> - <style>body{}</style>",
    "<scr<script>ipt>alert(1)</script>",
    "`<script>`</script>",
    "```\n</code></pre><script>alert(1)</script>\n```",
    "<!-- <script>alert(1)</script> -->",
    "[x](//evil.example/path)",
    "<form action=https://evil.example><button>go</button></form>",
    # Past the markup budget (plain text with line breaks): still escaped.
    "<script>alert(1)</script>\n" * 60,
    "[x](javascript:alert(1)) " * 100,
]
TAG = re.compile(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)([^>]*)>")


@pytest.mark.parametrize("text", XSS_VECTORS)
def test_markup_scripts_and_dangerous_links_never_survive(text):
    html = render(text)
    for match in TAG.finditer(html):
        name, attributes = match.group(1).lower(), match.group(2)
        assert name in formatting.ALLOWED_TAGS, (text, html)
        names = set(re.findall(r"\s([a-zA-Z-]+)=", attributes))
        assert names <= formatting.ALLOWED_ATTRIBUTES.get(name, set()) | (
            {"target", "rel"} if name == "a" else set()
        ), html
        href = re.search(r'href="([^"]*)"', attributes)
        if href:
            assert re.match(r"(https?:|mailto:)", href.group(1)), html
    assert "<script" not in html.lower() and "<img" not in html.lower(), html


# Mostly plain chat text, with some of the characters that take the full renderer.
_chat_text = st.text(
    alphabet=st.sampled_from(list("abc XYZ éü日本 0123456789.,:;!?'\"()/@#-+=~|$%^") + ["\u3000", "\u00a0", "\n"]),
    max_size=40,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_chat_text)
@example("1764700000 xxxxxxxx")  # digits first: plain (the load test's messages)
@example("1.5 is more")
@example("1. a list")
@example("12) a list")
@example("1.")
@example("- a list")
def test_the_plain_text_fast_path_gives_what_the_renderer_gives(text):
    if not text.strip():
        return
    assert render(text) == formatting._full(text)


def test_text_with_too_much_markup_is_shown_as_plain_text_with_its_line_breaks():
    # Hostile amounts of markup cost the renderer a lot per message; past the budget, plain text.
    assert render("[" * 4000) == "<p>" + "[" * 4000 + "</p>"
    assert render("**a**\n" * formatting.MAX_LINES) == "<p>" + "<br>\n".join(["**a**"] * formatting.MAX_LINES) + "</p>"
    assert render("**a**\n" * 10).startswith("<p><strong>a</strong><br>")
    stars = "*" * (formatting.MAX_MARKUP_CHARACTERS + 1)
    assert render(stars) == f"<p>{stars}</p>"


def test_rendering_is_cached_by_message_and_change_number(monkeypatch):
    formatting.cache.clear()
    calls = []
    monkeypatch.setattr(formatting, "render", lambda text: calls.append(text) or f"<p>{text}</p>")
    first = formatting.message_html("m1", 1, "one")
    assert formatting.message_html("m1", 1, "one") == first == "<p>one</p>"
    assert formatting.message_html("m1", 2, "two") == "<p>two</p>"
    assert calls == ["one", "two"]


# -- every copy of a message carries the same html -----------------------------------------------


@pytest.mark.django_db
def test_history_sync_and_edits_carry_the_rendered_html(make_user):
    ada = make_user("ada")
    room = room_with(ada, "Formatting")
    message = send_message(room, ada, "**hello** <b>")
    api = client_for(ada)
    [shown] = api.get(f"/api/v1/rooms/{room.pk}/messages/").json()["results"]
    assert shown["content"] == "**hello** <b>"
    assert shown["html"] == "<p><strong>hello</strong> &lt;b&gt;</p>"
    edited = message_edit(user=ada, room_id=room.pk, message_id=message.id, content="_now_ [a](https://example.com)")
    [change] = api.get(f"/api/v1/rooms/{room.pk}/changes/?after_sequence=0").json()["results"]
    assert change["sequence"] == edited.changed_sequence
    assert change["message"]["html"] == f'<p><em>now</em> <a href="https://example.com" {LINK_ATTRS}>a</a></p>'
    deleted = api.delete(f"/api/v1/rooms/{room.pk}/messages/{message.id}/").json()
    assert (deleted["content"], deleted["html"]) == ("", "")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_live_frames_of_a_send_and_an_edit_carry_the_html(make_user):
    from channels.db import database_sync_to_async

    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_with)(ada, "Live")
    socket, _ = await connect(ada)
    try:
        key = str(uuid.uuid4())
        await socket.send_json_to(
            {"type": "message.send", "room": str(room.pk), "content": "*hi*", "client_msg_id": key}
        )
        new = await receive_type(socket, "message.new")
        assert new["message"]["html"] == "<p><em>hi</em></p>"
        await socket.send_json_to(
            {"type": "message.edit", "room": str(room.pk), "id": new["message"]["id"], "content": "`code`"}
        )
        edit = await receive_type(socket, "message.edit")
        assert edit["message"]["html"] == "<p><code>code</code></p>"
    finally:
        await socket.disconnect()


def test_text_starting_with_a_number_takes_the_fast_path(monkeypatch):
    """Only "1." / "1)" and a space start a list: other digit-first text never needs the renderer
    (a digit-first rule cost the chat load test ~7 % of the servers' time in markdown-it)."""

    def full(text: str) -> str:
        raise AssertionError(f"full renderer used for {text!r}")

    monkeypatch.setattr(formatting, "_full", full)
    assert render("1764700000 people agree") == "<p>1764700000 people agree</p>"
    assert render("3.14 is close enough") == "<p>3.14 is close enough</p>"
