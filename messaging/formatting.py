"""Message formatting: a safe Markdown subset rendered to HTML on the server (issue 16).

What renders: **bold**, *italics*, `inline code`, code blocks (fenced or indented), [links](https://…)
and <https://…> autolinks, > quotes, - and 1. lists, and line breaks as typed. Nothing else: raw
HTML is shown as the text it is (escaped, never parsed), headings, rules and images stay as
their text (an image's `![alt](url)` becomes a link), and links may only be http(s) or mailto.

Two layers: markdown-it-py (CommonMark, `html` off, so every `<` in a message is text) with the
rules above only, then nh3 (ammonia) keeps the allowlisted tags and attributes below, drops any
URL that is not http(s)/mailto or is relative, and stamps every link with
`rel="noopener noreferrer nofollow"` and `target="_blank"`. The web client inserts this HTML as it
is (static/js/rich-text.js, which checks it against the same allowlist once more).

Where it happens: `message_html` is called by messaging.payloads.message_payload, so every copy of
a message (the live frame of a send or an edit, history, sync, archived days, SSE/long-poll)
carries the same `html`. The live frame is serialised once per change, so a send renders once; a
small cache by (message id, change number) serves history and sync pages of recent messages. Plain
one-line text (most chat messages) takes a fast path that gives byte for byte what the full
renderer gives (tests/test_formatting.py checks both on the same inputs).
"""

import re
from collections import OrderedDict
from html import escape
from threading import Lock

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset({"p", "br", "strong", "em", "code", "pre", "a", "blockquote", "ul", "ol", "li"})
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

_markdown = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False}).disable(
    ["heading", "lheading", "hr", "image", "html_block", "html_inline"]
)

# Text with none of these characters, on one line, neither starting nor ending with a space nor
# starting like a list, quote or code fence, is one plain paragraph whatever the renderer:
# markdown-it would give "<p>" + the text + "</p>" and nh3 would keep it as it is. A digit starts
# a list only as "1." or "1)" followed by a space or the end: "1764700000 people" is plain (a
# digit-first rule sent every such message, and every load-test message, to the full renderer).
_MARKUP = re.compile(r"[\\`*_\[\]<>&\x00-\x1f\x7f-\xa0]")
_NOT_PLAIN_START = re.compile(r"^(?:[\s\-+*>#=~]|\d{1,9}[.)](?:\s|$))")


# The renderer's cost grows with the markup a text holds, fast for hostile text: 4,000 "[" took
# ~190 ms, 2,000 lines ~70 ms (docs/performance.md). A text with more markup characters or lines
# than these is shown as plain text with its line breaks (still escaped), so that one message
# costs the send path a few milliseconds at most.
MAX_MARKUP_CHARACTERS = 256
MAX_LINES = 400
_MARKUP_CHARACTER = re.compile(r"[\[\]<>*_`]")


def _plain(text: str) -> str:
    return "<p>" + escape(text.strip(), quote=False).replace("\n", "<br>\n") + "</p>"


def _full(text: str) -> str:
    rendered = _markdown.render(text)
    return nh3.clean(
        rendered,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_relative="deny",
        strip_comments=True,
    ).strip()


def render(text: str) -> str:
    """The sanitised HTML of a message's text ("" for no text)."""
    if not text.strip():
        return ""
    if _MARKUP.search(text) is None and _NOT_PLAIN_START.search(text) is None and text == text.rstrip():
        return f"<p>{text}</p>"
    if text.count("\n") >= MAX_LINES or len(_MARKUP_CHARACTER.findall(text)) > MAX_MARKUP_CHARACTERS:
        return _plain(text.replace("\r\n", "\n").replace("\r", "\n"))
    return _full(text)


class _Cache:
    """The last few thousand renderings, by (message id, change number): an edit is a new number."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[str, int]) -> str | None:
        with self._lock:
            html = self._items.get(key)
            if html is not None:
                self._items.move_to_end(key)
            return html

    def put(self, key: tuple[str, int], html: str) -> None:
        with self._lock:
            self._items[key] = html
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


cache = _Cache(4096)


def message_html(message_id: object, version: int, text: str) -> str:
    """`render(text)`, cached by the message and the number of its latest change."""
    key = (str(message_id), version)
    html = cache.get(key)
    if html is None:
        html = render(text)
        cache.put(key, html)
    return html
