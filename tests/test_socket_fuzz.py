"""Hypothesis-generated frames on a real socket (issue 12): whatever a client sends (JSON objects of
known and unknown types with fields of every wrong type, huge and negative numbers, bad UUIDs,
nesting up to the limit and beyond it, NUL and lone surrogates, oversized strings, text that is
not JSON, binary frames), the answer is a documented frame with a documented error code, never
`internal`, and the socket stays open unless a documented close applies (1009 after `too_large`
for a frame over 64 KB).

A second property for message texts: any text a client can send comes back exactly as sent, or
is refused on its own (`invalid`, `too_large`), never `internal` (with the NUL check of
core.jsontext removed, both tests fail).

The documented frame types and error codes are read from docs/protocol.md, so the two cannot
drift apart. Deterministic (derandomize) and bounded (MAX_EXAMPLES): the same frames every run.
"""

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boards.services import board_create
from e2ee import envelope
from messaging.consumers import CLOSE_TOO_LARGE, ChatConsumer
from messaging.services import message_send
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.boards_helpers import Client as BoardClient
from tests.boards_helpers import b64
from tests.sockets import TIMEOUT, connect

pytestmark = [pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = 60
FRAMES_PER_EXAMPLE = 10  # at most; about 10 s in all on a quiet machine
PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _documented(heading: str) -> set[str]:
    """The backticked names in the first column of the tables under every heading containing
    `heading` in docs/protocol.md."""
    names: set[str] = set()
    for section in re.split(r"^#+ ", PROTOCOL.read_text(), flags=re.MULTILINE):
        if section.startswith(heading):
            for row in re.findall(r"^\|([^|\n]*)\|", section, flags=re.MULTILINE):
                names.update(re.findall(r"`([^`]+)`", row))
    return names


SERVER_FRAMES = _documented("Server → client")
ERROR_CODES = _documented("Error codes")
CLOSE_CODES = {int(code) for name in _documented("Close codes") for code in re.findall(r"\d{4}", name)}
CLOSE_CODES |= {int(code) for code in re.findall(r"^\| (\d{4})", PROTOCOL.read_text(), flags=re.MULTILINE)}


def test_the_documented_lists_were_read():
    assert {"error", "message.ack", "sync.batch", "history.page"} <= SERVER_FRAMES
    assert {"invalid_json", "invalid_frame", "unknown_type", "invalid", "too_large", "not_found"} <= ERROR_CODES
    assert {4401, 1009, 1008} <= CLOSE_CODES


# -- the frames ------------------------------------------------------------------------------------

# Fields the frames of each type have (docs/protocol.md); unknown types get a mixture.
FIELDS = {
    "message.send": ["room", "content", "client_msg_id", "reply_to"],
    "message.edit": ["room", "id", "content"],
    "message.delete": ["room", "id"],
    "reaction.add": ["room", "id", "emoji"],
    "reaction.remove": ["room", "id", "emoji"],
    "sync": ["room", "after_sequence", "limit"],
    "history": ["room", "before_sequence", "after_sequence", "limit"],
    "receipt": ["room", "delivered_sequence", "read_sequence"],
    "typing": ["room"],
    "heartbeat": ["active"],
}
OTHER_FIELDS = ["room", "board", "id", "content", "client_msg_id", "client_update_id", "after_sequence", "state"]
MARKER_PREFIX = "zz.fuzz.marker."

NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d\ude00", "\u202e", "\ufeff", "\\", '"', "null", "💬" * 3]
)
TEXT = st.one_of(st.text(max_size=30), NASTY_TEXT, st.text(st.characters(codec=None), max_size=10))
NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=200),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)


def _nested(depth: int, value: Any, use_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if use_list else {"k": value}
    return value


NESTED = st.builds(_nested, st.integers(min_value=1, max_value=40), SCALARS, st.booleans())
HUGE = st.integers(min_value=4_001, max_value=70_000).map(lambda n: "x" * n)
# Message texts: ordinary, and text PostgreSQL cannot store (NUL, lone surrogates) inside it.
CONTENT = st.one_of(
    st.sampled_from(["hi", "a\nb", "💬", " x "]),
    st.builds(
        lambda a, bad, b: a + bad + b,
        st.text(max_size=5),
        st.sampled_from(["\x00", "\ud800", "\udfff"]),
        st.text(max_size=5),
    ),
    TEXT,
)


def _field_values(known: dict[str, list[str]]) -> st.SearchStrategy:
    """A value for a field: mostly a plausible one (real rooms and messages, UUIDs), otherwise
    anything at all."""
    ids = st.sampled_from(known["rooms"] + known["messages"] + known["boards"])
    return st.one_of(
        ids,
        ids,
        st.uuids().map(str),
        st.just(str(uuid.uuid4()).upper()),
        TEXT,
        NUMBERS,
        JSON_VALUES,
        NESTED,
        HUGE,
    )


def _template(draw, kind: str, known: dict[str, list[str]]) -> dict:
    """A valid frame of `kind` naming things Ada may or may not see (before any mutation)."""
    room = draw(st.sampled_from(known["rooms"][:1] + known["rooms"]))  # Ada's own room, mostly
    board = draw(st.sampled_from(known["boards"]))
    key = str(draw(st.uuids()))
    sequence = draw(st.integers(min_value=0, max_value=5))
    templates = {
        "message.send": {
            "room": room,
            "content": draw(CONTENT),
            "client_msg_id": key,
        },
        "message.edit": {"room": room, "id": draw(st.sampled_from(known["messages"])), "content": draw(CONTENT)},
        "message.delete": {"room": room, "id": draw(st.sampled_from(known["messages"]))},
        "reaction.add": {"room": room, "id": draw(st.sampled_from(known["messages"])), "emoji": "👍"},
        "reaction.remove": {"room": room, "id": draw(st.sampled_from(known["messages"])), "emoji": "👍"},
        "sync": {"room": room, "after_sequence": sequence, "limit": draw(st.integers(1, 100))},
        "history": draw(
            st.sampled_from(
                [
                    {"room": room},
                    {"room": room, "before_sequence": sequence + 1},
                    {"room": room, "after_sequence": sequence},
                ]
            )
        ),
        "receipt": {"room": room, "delivered_sequence": sequence, "read_sequence": sequence},
        "typing": {"room": room},
        "heartbeat": {"active": draw(st.booleans())},
        "ping": {},
        "board.join": {"board": board},
        "board.update": {"board": board, "update": known["update"][0], "client_update_id": key},
        "board.sync": {"board": board, "after_sequence": sequence},
        "board.awareness": {"board": board, "state": {"cursor": {"x": 1, "y": 2}}},
        "board.leave": {"board": board},
    }
    return dict(templates.get(kind, {name: draw(st.sampled_from(known["rooms"])) for name in OTHER_FIELDS[:2]}))


@st.composite
def frames(draw, known: dict[str, list[str]]) -> tuple[str, Any]:
    """("text", str) or ("bytes", bytes): one frame as a client could send it."""
    form = draw(
        st.sampled_from(
            ["valid"] * 8 + ["known"] * 4 + ["unknown", "odd_type", "not_object", "not_json", "bytes", "huge"]
        )
    )
    values = _field_values(known)
    if form == "bytes":
        return "bytes", draw(st.binary(max_size=64))
    if form == "huge":  # content over 4,000 characters; a frame over 64 KB closes the socket (1009)
        return "text", json.dumps(
            {**_template(draw, "message.send", known), "type": "message.send", "content": draw(HUGE)}
        )
    if form == "not_json":
        text = draw(st.one_of(st.text(max_size=40), st.sampled_from(["{", '{"type": "sync",}', "[1,", "NaN", "\x00"])))
        try:
            json.loads(text)
        except ValueError:
            return "text", text
        return "text", text + "}"
    if form == "not_object":
        return "text", json.dumps(draw(JSON_VALUES))
    if form == "odd_type":
        frame = {"type": draw(st.one_of(st.none(), NUMBERS, st.lists(TEXT, max_size=2), st.just({"t": 1})))}
        if draw(st.booleans()):
            del frame["type"]
    else:
        types = sorted(ChatConsumer.handlers)
        chat = [kind for kind in types if kind in FIELDS]  # the chat frames more often than the others
        kind = (
            draw(st.sampled_from(chat * 2 + types))
            if form != "unknown"
            else draw(TEXT.filter(lambda t: t not in types))
        )
        if kind.startswith(MARKER_PREFIX):
            kind = "x" + kind
        frame = _template(draw, kind, known)
        # "valid": one field (or none) gets a wrong value or goes; "known": any of its fields, anything.
        names = sorted(frame) or FIELDS.get(kind, OTHER_FIELDS)
        if form == "valid":  # as it is, or with one field changed
            changed = [draw(st.sampled_from(names))] if draw(st.booleans()) else []
        else:
            changed = draw(st.lists(st.sampled_from(FIELDS.get(kind, OTHER_FIELDS)), unique=True, max_size=4))
        for name in changed:
            if draw(st.integers(0, 4)) == 0:
                frame.pop(name, None)
            else:
                frame[name] = draw(values)
        if form == "known":
            frame.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=2)))  # unknown fields
        frame["type"] = kind
    text = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: a real client can only send it escaped
        text = json.dumps(frame)
    if draw(st.integers(0, 20)) == 0:  # JSON's non-standard numbers, which Python's parser accepts
        text = re.sub(r'(?<=": )-?\d+(?=[,}])', "NaN", text, count=1)
    return "text", text


# -- the socket ------------------------------------------------------------------------------------


def _world(make_user) -> tuple[Any, dict[str, list[str]]]:
    """Ada, and what she may name: a room she owns, one where she is a viewer, a public room she
    has not joined, a private one she may not see; her messages and someone else's; a board of
    hers and one she may not see."""
    ada, bob = make_user("ada"), make_user("bob")
    home = room_create(creator=ada, name="Home", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=home, user=bob, role="member")
    watch = room_create(creator=bob, name="Watch", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=watch, user=ada, role="viewer")
    public = room_create(creator=bob, name="Public", kind=Room.Kind.PUBLIC)
    secret = room_create(creator=bob, name="Secret", kind=Room.Kind.PRIVATE)
    messages = [
        message_send(user=user, room_id=room.pk, content="hi", client_msg_id=uuid.uuid4())[0]
        for user, room in ((ada, home), (bob, home), (bob, watch), (bob, secret))
    ]
    boards = [board_create(user=user, room_id=room.pk, title="B") for user, room in ((ada, home), (bob, secret))]
    return ada, {
        "rooms": [str(room.pk) for room in (home, home, watch, public, secret)],
        "messages": [str(message.id) for message in messages],
        "boards": [str(board.pk) for board in (*boards, boards[0])],
        "update": [b64(BoardClient().edit("e1", x=1, y=2))],
    }


class Socket:
    """Ada's socket; reopened after a documented close."""

    def __init__(self, user) -> None:
        self.user = user
        self.communicator: WebsocketCommunicator | None = None
        self.markers = 0

    async def open(self) -> WebsocketCommunicator:
        if self.communicator is None:
            self.communicator, _ = await connect(self.user)
        return self.communicator

    async def exchange(self, kind: str, payload: Any) -> tuple[list[dict], int | None]:
        """Send the frame, then a marker (an unknown type of its own): every frame the socket
        sends back before the marker's answer, and the close code if it closed instead."""
        communicator = await self.open()
        # Not send_to(), which refuses empty frames: a client can send them.
        await communicator.send_input({"type": "websocket.receive", ("bytes" if kind == "bytes" else "text"): payload})
        self.markers += 1
        marker = f"{MARKER_PREFIX}{self.markers}"
        await communicator.send_json_to({"type": marker})
        answers = []
        while True:
            output = await communicator.receive_output(timeout=TIMEOUT)
            if output["type"] == "websocket.close":
                await communicator.disconnect()
                self.communicator = None
                return answers, output.get("code", 1000)
            frame = json.loads(output["text"])
            if frame.get("type") == "error" and frame.get("code") == "unknown_type" and marker in frame["message"]:
                return answers, None
            answers.append(frame)

    async def close(self) -> None:
        if self.communicator is not None:
            await self.communicator.disconnect()


@pytest.fixture
def fuzz_world(make_user, settings):
    settings.RATE_LIMITS = {"socket": {}, "user": {}}  # every frame reaches its handler
    return _world(make_user)


@pytest_asyncio.fixture
async def socket(fuzz_world):
    """One socket for all the examples of the test (hypothesis runs them with the same fixtures)."""
    opened = Socket(fuzz_world[0])
    yield opened
    await opened.close()


@pytest.mark.asyncio
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_every_frame_gets_a_documented_answer_and_keeps_the_socket(fuzz_world, socket, data):
    # Several frames an example: hypothesis varies a list of them more than one frame at a time.
    sent = data.draw(st.lists(frames(fuzz_world[1]), min_size=1, max_size=FRAMES_PER_EXAMPLE), label="frames")
    for kind, payload in sent:
        answers, closed = await socket.exchange(kind, payload)

        for frame in answers:
            assert frame.get("type") in SERVER_FRAMES, f"undocumented frame {frame}"
            if frame["type"] == "error":
                assert frame["code"] != "internal", frame
                assert frame["code"] in ERROR_CODES, f"undocumented error code {frame}"
                assert isinstance(frame["message"], str) and "ref" in frame
        if closed is not None:
            oversized = kind == "text" and len(payload.encode()) > 64 * 1024
            assert (closed, oversized) == (CLOSE_TOO_LARGE, True), f"closed with {closed} after {answers}"
            assert answers[-1]["code"] == "too_large"


@pytest.mark.asyncio
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.one_of(CONTENT, st.text(st.characters(codec=None), min_size=1, max_size=50)), key=st.uuids())
async def test_any_text_is_stored_exactly_or_refused_as_invalid(fuzz_world, socket, content, key):
    """Every text a client can send comes back exactly as sent (through PostgreSQL), or is refused
    per message: `invalid` (blank, NUL, lone surrogates), `too_large`, or `reserved_text` (it
    starts as stored end-to-end encryption envelopes do, docs/e2ee.md); never `internal`."""
    frame = {"type": "message.send", "room": fuzz_world[1]["rooms"][0], "content": content, "client_msg_id": str(key)}

    answers, closed = await socket.exchange("text", json.dumps(frame))

    assert closed is None
    (answer,) = [frame for frame in answers if frame["type"] in ("message.ack", "error")]
    if answer["type"] == "message.ack":
        assert answer["message"]["content"] == content
    elif answer["code"] == "reserved_text":
        assert content.startswith(envelope.RESERVED), answer
    else:
        assert answer["code"] in ("invalid", "too_large"), answer
        assert content.strip() == "" or "\x00" in content or not _encodable(content), answer


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
